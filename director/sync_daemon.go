package director

// The kernel's global settings: timeouts, sysctls and the connection
// sync daemon, which may follow a VRRP instance's state. Only the
// daemon's loop changes them.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/vrrp"
)

// applyGlobals sets the IPVS timeouts, sysctls and sync daemons. Failures
// are logged: traffic can flow without them.
func (d *Daemon) applyGlobals(cfg *config.Config) {
	g := &cfg.IPVS
	if t := g.KernelTimeouts(); t != (ipvs.Timeouts{}) {
		if err := d.opts.Client.SetTimeouts(t); err != nil {
			d.log.Error("setting IPVS timeouts", "err", err)
		}
	}
	if d.opts.WriteSysctl != nil {
		set := func(key, value string) {
			if err := d.opts.WriteSysctl("net.ipv4.vs."+key, value); err != nil {
				d.log.Error("setting sysctl", "key", "net.ipv4.vs."+key, "err", err)
			}
		}
		b := map[bool]string{false: "0", true: "1"}
		if g.ExpireNodestConn != nil {
			set("expire_nodest_conn", b[*g.ExpireNodestConn])
		}
		if g.ExpireQuiescentTemplate != nil {
			set("expire_quiescent_template", b[*g.ExpireQuiescentTemplate])
		}
		if g.SloppyTCP != nil {
			set("sloppy_tcp", b[*g.SloppyTCP])
		}
		if g.ConnReuseMode != nil {
			set("conn_reuse_mode", strconv.Itoa(*g.ConnReuseMode))
		}
		if g.SyncThreshold != nil {
			set("sync_threshold", fmt.Sprintf("%d %d", g.SyncThreshold.Threshold, g.SyncThreshold.Period))
		}
	}
	if sd := g.SyncDaemon; sd != nil && sd.VRRPInstance != "" {
		role := d.followedSyncRole(sd.VRRPInstance)
		if err := d.ensureSyncDaemon(g.SyncDaemonAs(role)); err != nil {
			d.log.Error("sync daemon", "err", err)
		}
		return
	}
	want := g.KernelSyncDaemons()
	if len(want) == 0 {
		return
	}
	running, err := d.opts.Client.SyncDaemons()
	if err != nil {
		d.log.Error("listing sync daemons", "err", err)
		return
	}
	for _, w := range want {
		i := slices.IndexFunc(running, func(r ipvs.SyncDaemon) bool { return r.Role == w.Role })
		if i >= 0 && running[i].Interface == w.Interface && running[i].SyncID == w.SyncID {
			continue
		}
		if i >= 0 {
			if err := d.opts.Client.StopSyncDaemon(w.Role); err != nil {
				d.log.Error("stopping sync daemon", "err", err)
				continue
			}
		}
		if err := d.opts.Client.StartSyncDaemon(w); err != nil {
			d.log.Error("starting sync daemon", "err", err)
		}
	}
}

// followSyncDaemon puts the connection sync daemon in the followed
// instance's role (followedSyncRole) when that instance is among those
// that changed state, as the running config describes it.
func (d *Daemon) followSyncDaemon(changed []string) {
	g := d.cfg.IPVS
	if g.SyncDaemon == nil || !slices.Contains(changed, g.SyncDaemon.VRRPInstance) {
		return // not following VRRP, or not this instance
	}
	role := d.followedSyncRole(g.SyncDaemon.VRRPInstance)
	err := d.ensureSyncDaemon(g.SyncDaemonAs(role))
	msg := fmt.Sprintf("connection sync daemon switched to %v (vrrp instance %s)", role, g.SyncDaemon.VRRPInstance)
	if err != nil {
		msg = fmt.Sprintf("switching the connection sync daemon to %v: %v", role, err)
		d.log.Error("switching sync daemon", "role", role, "err", err)
	} else {
		d.log.Info("sync daemon switched", "role", role)
	}
	d.event("vrrp", "", "", msg)
}

// followedSyncRole is the sync daemon's role while it follows the named
// VRRP instance: master while the instance is, backup otherwise (and
// before VRRP runs).
func (d *Daemon) followedSyncRole(instance string) ipvs.SyncRole {
	if r := d.vrrp.Load(); r != nil {
		if vi := r.named(instance); vi != nil && vi.inst.Status().State == vrrp.Master {
			return ipvs.SyncMaster
		}
	}
	return ipvs.SyncBackup
}

// ensureSyncDaemon makes want the one sync daemon running: the other
// role is stopped, and want started unless it already runs as written.
// Only the daemon's loop calls it.
func (d *Daemon) ensureSyncDaemon(want ipvs.SyncDaemon) error {
	running, err := d.opts.Client.SyncDaemons()
	if err != nil {
		return fmt.Errorf("listing sync daemons: %w", err)
	}
	var errs []error
	keep := false
	for _, r := range running {
		if r.Role == want.Role && r.Interface == want.Interface && r.SyncID == want.SyncID {
			keep = true
			continue
		}
		if err := d.opts.Client.StopSyncDaemon(r.Role); err != nil {
			errs = append(errs, fmt.Errorf("stopping the %v sync daemon: %w", r.Role, err))
		}
	}
	if !keep {
		if err := d.opts.Client.StartSyncDaemon(want); err != nil {
			errs = append(errs, fmt.Errorf("starting the %v sync daemon on %s: %w", want.Role, want.Interface, err))
		}
	}
	return errors.Join(errs...)
}
