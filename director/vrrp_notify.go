package director

// What follows a VRRP transition besides the addresses: notify commands
// (per instance and per sync group, keepalived's notify_* and notify) and
// the IPVS connection sync daemon's role.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/scripts"
	"github.com/lvskit/lvskit/director/vrrp"
)

// NotifyTimeout bounds one notify command; lvsd kills it after that.
const NotifyTimeout = 30 * time.Second

// notifier runs notify commands in the background, without a shell.
type notifier struct {
	run   func(ctx context.Context, p scripts.Program) error
	log   *slog.Logger
	event func(kind, service, rs, msg string)
	wg    sync.WaitGroup
}

func (n *notifier) start(what string, p scripts.Program) {
	if len(p.Args) == 0 {
		return
	}
	argv := p.Args
	if n.run == nil {
		n.log.Info("notify command not run (no runner)", "for", what, "command", argv)
		return
	}
	n.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), NotifyTimeout)
		defer cancel()
		if err := n.run(ctx, p); err != nil {
			n.log.Error("notify command failed", "for", what, "command", argv, "err", err)
			n.event("vrrp", "", "", fmt.Sprintf("notify command %q for %s failed: %v", argv, what, err))
		}
	})
}

func (n *notifier) wait() { n.wg.Wait() }

// notifyState is keepalived's word for a state in notify arguments.
func notifyState(s vrrp.State) string {
	switch s {
	case vrrp.Master:
		return "MASTER"
	case vrrp.Backup:
		return "BACKUP"
	case vrrp.Fault:
		return "FAULT"
	}
	return "STOP"
}

// fire runs the commands of n for a new state: the state's own command,
// then `any` with "INSTANCE"|"GROUP", the name, the state and the
// priority appended.
func (n *notifier) fire(cmds *config.VRRPNotify, kind, name string, state vrrp.State, priority uint8) {
	if cmds == nil {
		return
	}
	what := strings.ToLower(kind) + " " + name
	switch state {
	case vrrp.Master:
		n.start(what, cmds.Run("master"))
	case vrrp.Backup:
		n.start(what, cmds.Run("backup"))
	case vrrp.Fault:
		n.start(what, cmds.Run("fault"))
	default:
		n.start(what, cmds.Run("stop"))
	}
	if p := cmds.Run("any"); len(p.Args) > 0 {
		p.Args = append(slices.Clone(p.Args), kind, name, notifyState(state), strconv.Itoa(int(priority)))
		n.start(what, p)
	}
}

// changed follows an instance's transition: its notify commands, its
// sync group's once every member has reached the state, and the daemon's
// loop, whose connection sync daemon may follow this instance.
func (r *vrrpRuntime) changed(vi *vrrpInstance, ch vrrp.StateChange) {
	if ch.To == vrrp.Initialize {
		return // stopping: stopped() notifies
	}
	c := vi.config()
	r.notify.fire(c.Notify, "INSTANCE", c.Name, ch.To, vi.inst.Status().Priority)
	section := r.section()
	if g := section.SyncGroupOf(c.Name); g != nil {
		r.groupChanged(g, vi, ch.To)
	}
	r.host.changed(c.Name)
}

// groupChanged notifies a sync group's commands when all its members are
// in the state the last of them just entered.
func (r *vrrpRuntime) groupChanged(g *config.VRRPSyncGroup, vi *vrrpInstance, to vrrp.State) {
	for _, name := range g.Instances {
		if other := r.named(name); other != nil && other != vi && other.inst.Status().State != to {
			return
		}
	}
	r.groupMu.Lock()
	last, seen := r.groupStates[g.Name]
	r.groupStates[g.Name] = to
	r.groupMu.Unlock()
	if seen && last == to {
		return
	}
	r.log.Info("vrrp sync group", "group", g.Name, "state", to)
	r.notify.fire(g.Notify, "GROUP", g.Name, to, 0)
}

// stopped runs the stop commands once the instances have stopped.
func (r *vrrpRuntime) stopped() {
	for _, in := range r.list() {
		c := in.config()
		r.notify.fire(c.Notify, "INSTANCE", c.Name, vrrp.Initialize, 0)
	}
	section := r.section()
	for i := range section.SyncGroups {
		g := &section.SyncGroups[i]
		r.notify.fire(g.Notify, "GROUP", g.Name, vrrp.Initialize, 0)
	}
}
