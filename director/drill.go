package director

// The failover drill's actions: a VRRP instance steps down, or a VIP's
// BGP route is withdrawn, for a hold time or until the drill ends it.
// They are served only on the status API's unix socket (NewAPIHandler).

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/lvskit/lvskit/director/bgp"
	"github.com/lvskit/lvskit/director/statusapi"
)

func checkHold(hold time.Duration) error {
	if hold < statusapi.MinDrillHold || hold > statusapi.MaxDrillHold {
		return fmt.Errorf("%w: hold %s: want between %s and %s", statusapi.ErrDrillRefused, hold, statusapi.MinDrillHold, statusapi.MaxDrillHold)
	}
	return nil
}

// StepDown makes a VRRP instance (and the other members of its sync
// group) step down for hold: a master sends a priority-0 advert, drops
// its VIPs and waits as a backup with priority 1, so it does not preempt
// back but still takes the VIPs if no master advertises. When the hold
// ends (or EndStepDown) its priority comes back and it preempts again
// if its config says so (preempt, preempt_delay), as after a start.
func (d *Daemon) StepDown(ctx context.Context, instance string, hold time.Duration) (statusapi.DrillAction, error) {
	a := statusapi.DrillAction{Kind: "vrrp-step-down", Target: instance, At: d.now()}
	r, err := d.drillInstance(instance)
	if err != nil {
		return a, err
	}
	if err := checkHold(hold); err != nil {
		return a, err
	}
	a.Instances = r.groupOf(instance)
	for _, name := range a.Instances {
		if p := r.configuredPriority(name); p == 255 {
			return a, fmt.Errorf("%w: vrrp instance %s is the address owner (priority 255): it takes its VIPs back at once; give it a priority below 255 to drill it", statusapi.ErrDrillRefused, name)
		}
	}
	a.Until = r.clock.Now().Add(hold)
	a.Active = true
	reason := fmt.Sprintf("drill requested through the status API, until %s", a.Until.Format("15:04:05"))
	if err := r.drillUpdate(ctx, trackUpdate{kind: "step-down", name: instance, until: a.Until, trackInput: trackInput{reason: reason}}); err != nil {
		return a, err
	}
	a.Message = fmt.Sprintf("%s stepping down for %s (priority 0 advert, then backup at priority %d); it comes back per its preempt settings at %s, or at DELETE",
		joinNames(a.Instances), hold, stepDownPriority, a.Until.Format(time.RFC3339))
	d.log.Warn("vrrp drill: stepping down", "instance", instance, "hold", hold, "instances", a.Instances)
	d.event("vrrp", "", "", fmt.Sprintf("drill: %s steps down for %s", joinNames(a.Instances), hold))
	return a, nil
}

// EndStepDown ends a step-down before its hold.
func (d *Daemon) EndStepDown(ctx context.Context, instance string) (statusapi.DrillAction, error) {
	a := statusapi.DrillAction{Kind: "vrrp-step-down", Target: instance, At: d.now()}
	r, err := d.drillInstance(instance)
	if err != nil {
		return a, err
	}
	a.Instances = r.groupOf(instance)
	if err := r.drillUpdate(ctx, trackUpdate{kind: "step-down", name: instance}); err != nil {
		return a, err
	}
	a.Message = fmt.Sprintf("%s: step-down ended; priority restored, preempting per config", joinNames(a.Instances))
	d.log.Info("vrrp drill: step-down ended", "instance", instance)
	d.event("vrrp", "", "", fmt.Sprintf("drill: %s step-down ended", joinNames(a.Instances)))
	return a, nil
}

func (d *Daemon) drillInstance(instance string) (*vrrpRuntime, error) {
	r := d.vrrp.Load()
	if r == nil {
		return nil, fmt.Errorf("%w: vrrp instance %q: this lvsd runs no vrrp instances", statusapi.ErrNoDrillTarget, instance)
	}
	if r.named(instance) == nil {
		instances := r.list()
		names := make([]string, 0, len(instances))
		for _, in := range instances {
			names = append(names, in.config().Name)
		}
		return nil, fmt.Errorf("%w: vrrp instance %q: this lvsd runs %s", statusapi.ErrNoDrillTarget, instance, joinNames(names))
	}
	return r, nil
}

// drillUpdate hands the tracking loop a drill's change, or says why it
// could not (lvsd stopping, the request gone).
func (r *vrrpRuntime) drillUpdate(ctx context.Context, u trackUpdate) error {
	select {
	case r.updates <- u:
		return nil
	case <-r.runCtx.Done():
		return fmt.Errorf("vrrp instance %s: lvsd is stopping", u.name)
	case <-ctx.Done():
		return fmt.Errorf("vrrp instance %s: %w", u.name, ctx.Err())
	}
}

var _ statusapi.Drills = (*Daemon)(nil)

// groupOf is the instance and the other members of its sync group.
func (r *vrrpRuntime) groupOf(instance string) []string {
	section := r.section()
	g := section.SyncGroupOf(instance)
	if g == nil {
		return []string{instance}
	}
	out := []string{instance}
	for _, in := range r.list() {
		name := in.config().Name
		if name != instance && section.SyncGroupOf(name) != nil && section.SyncGroupOf(name).Name == g.Name {
			out = append(out, name)
		}
	}
	return out
}

// steppedDownUntil is when the drill an instance is under ends; zero
// without one.
func (r *vrrpRuntime) steppedDownUntil(instance string) time.Time {
	r.trackMu.Lock()
	defer r.trackMu.Unlock()
	for _, ti := range r.tracking.instances {
		if ti.name == instance {
			sd, _ := r.tracking.stepDownOf(ti)
			return sd.until
		}
	}
	return time.Time{}
}

func joinNames(names []string) string {
	switch len(names) {
	case 0:
		return "none"
	case 1:
		return names[0]
	}
	return fmt.Sprintf("%s and %s", joinList(names[:len(names)-1]), names[len(names)-1])
}

func joinList(s []string) string {
	out := ""
	for i, n := range s {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}

// Withdraw withdraws vip's BGP route for hold, whatever its health; when
// the hold ends (or EndWithdraw) lvsd announces it again if its services
// are healthy. The loop decides at once; the hold's end is seen within
// BGPOptions.Interval.
func (d *Daemon) Withdraw(vip netip.Addr, hold time.Duration) (statusapi.DrillAction, error) {
	a := statusapi.DrillAction{Kind: "bgp-withdraw", Target: vip.String(), At: d.now()}
	r, err := d.drillVIP(vip)
	if err != nil {
		return a, err
	}
	if err := checkHold(hold); err != nil {
		return a, err
	}
	a.Until, a.Active = a.At.Add(hold), true
	r.mu.Lock()
	if r.drills == nil {
		r.drills = map[netip.Addr]time.Time{}
	}
	r.drills[vip] = a.Until
	r.mu.Unlock()
	a.Message = fmt.Sprintf("%v withdrawn for %s; announced again at %s if healthy, or at DELETE", vip, hold, a.Until.Format(time.RFC3339))
	d.log.Warn("bgp drill: withdrawing", "vip", vip.String(), "hold", hold)
	d.event("bgp", "", "", fmt.Sprintf("drill: %v withdrawn for %s", vip, hold))
	d.kick()
	return a, nil
}

// EndWithdraw ends a drill's withdraw before its hold.
func (d *Daemon) EndWithdraw(vip netip.Addr) (statusapi.DrillAction, error) {
	a := statusapi.DrillAction{Kind: "bgp-withdraw", Target: vip.String(), At: d.now()}
	r, err := d.drillVIP(vip)
	if err != nil {
		return a, err
	}
	r.mu.Lock()
	delete(r.drills, vip)
	r.mu.Unlock()
	a.Message = fmt.Sprintf("%v: drill ended; announced again if healthy", vip)
	d.event("bgp", "", "", fmt.Sprintf("drill: %v withdraw ended", vip))
	d.kick()
	return a, nil
}

func (d *Daemon) drillVIP(vip netip.Addr) (*bgpRuntime, error) {
	r := d.bgpRT()
	if r == nil {
		return nil, fmt.Errorf("%w: vip %v: this lvsd has no bgp section", statusapi.ErrNoDrillTarget, vip)
	}
	if !slices.ContainsFunc(d.snapshot().bgpVIPs, func(v bgp.VIP) bool { return v.Address == vip }) {
		return nil, fmt.Errorf("%w: vip %v is not announced over bgp by this lvsd's config", statusapi.ErrNoDrillTarget, vip)
	}
	return r, nil
}

// kick wakes the daemon's loop, which decides the BGP announcements
// again.
func (d *Daemon) kick() { d.inbox.postDrill() }
