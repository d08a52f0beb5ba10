package director

// VRRP tracking: the links and scripts an instance tracks and its sync
// group decide its effective priority and whether it is in fault. One
// goroutine owns the tracking state; the link watcher and the script
// scheduler send it updates, and it posts the resulting priority and
// fault events to the instances in order.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/director/vrrp"
)

// trackInput is the last word on one link or script.
type trackInput struct {
	known, up bool
	reason    string
}

func (in trackInput) state() string {
	switch {
	case !in.known:
		return "unknown"
	case in.up:
		return "up"
	}
	return "down"
}

// trackUpdate is a change of one link or script.
type trackUpdate struct {
	kind string // "interface", "script" or "step-down"
	name string
	trackInput
	// until ends a "step-down" drill (zero: end it now); reason says who
	// asked.
	until time.Time
}

// stepDownPriority is a stepped-down instance's priority: the lowest, so
// it does not preempt back, but still takes over if nobody advertises.
const stepDownPriority = 1

// trackRef is one tracked link or script of an instance with the weight
// in force for it.
type trackRef struct {
	kind, name string
	weight     int
}

// trackedInstance is the tracking view of one instance.
type trackedInstance struct {
	name  string
	base  uint8
	group string
	refs  []trackRef
	// priority and fault are what was last posted to the instance;
	// steppedDown whether a StepDown was.
	priority    uint8
	fault       string
	steppedDown bool
}

// trackState is the tracking state of every instance.
type trackState struct {
	inputs    map[[2]string]trackInput // kind, name
	instances []*trackedInstance
	// stepDowns are the drills on, by instance: when each ends and why.
	stepDowns map[string]stepDown
}

type stepDown struct {
	until  time.Time
	reason string
}

func newTrackState(v config.VRRP) *trackState {
	s := &trackState{inputs: map[[2]string]trackInput{}, stepDowns: map[string]stepDown{}}
	for _, in := range v.Instances {
		ti := &trackedInstance{name: in.Name, base: uint8(in.Priority), priority: uint8(in.Priority)}
		if g := v.SyncGroupOf(in.Name); g != nil {
			ti.group = g.Name
		}
		// The instance's own link is always tracked: no adverts, no
		// addresses while it is down.
		ti.refs = append(ti.refs, trackRef{"interface", in.Interface, 0})
		for _, l := range in.TrackInterfaces {
			if l.Name != in.Interface {
				ti.refs = append(ti.refs, trackRef{"interface", l.Name, l.Weight})
			}
		}
		for _, ts := range in.TrackScripts {
			w := 0
			if sc := v.Script(ts.Name); sc != nil {
				w = sc.Weight
			}
			if ts.Weight != nil {
				w = *ts.Weight
			}
			ti.refs = append(ti.refs, trackRef{"script", ts.Name, w})
		}
		s.instances = append(s.instances, ti)
	}
	return s
}

// links are the names of every tracked link.
func (s *trackState) links() []string {
	var out []string
	seen := map[string]bool{}
	for _, ti := range s.instances {
		for _, r := range ti.refs {
			if r.kind == "interface" && !seen[r.name] {
				seen[r.name] = true
				out = append(out, r.name)
			}
		}
	}
	return out
}

// own evaluates an instance by its own tracks alone: its priority, the
// reason it is in fault ("" if not), and the tracks for the status API.
func (s *trackState) own(ti *trackedInstance) (uint8, string, []statusapi.VRRPTrack) {
	delta := 0
	var faults []string
	tracks := make([]statusapi.VRRPTrack, 0, len(ti.refs))
	for _, r := range ti.refs {
		in := s.inputs[[2]string{r.kind, r.name}]
		t := statusapi.VRRPTrack{Kind: r.kind, Name: r.name, State: in.state(), Weight: r.weight, Reason: in.reason}
		down := in.known && !in.up
		switch {
		case r.weight == 0 && down:
			t.Effect = "fault"
			faults = append(faults, fmt.Sprintf("%s %s is down", r.kind, r.name)+reasonSuffix(in.reason))
		case r.weight > 0 && in.known && in.up:
			delta += r.weight
			t.Effect = fmt.Sprintf("%+d", r.weight)
		case r.weight < 0 && down:
			delta += r.weight
			t.Effect = fmt.Sprintf("%+d", r.weight)
		}
		tracks = append(tracks, t)
	}
	prio := ti.base
	if prio != 255 { // the address owner's priority is fixed
		prio = uint8(min(max(int(ti.base)+delta, 1), 254))
	}
	return prio, strings.Join(faults, "; "), tracks
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

// trackPost is an event for one instance.
type trackPost struct {
	instance string
	event    vrrp.Event
}

// decide applies the inputs to every instance and its sync group and
// returns the events to post, in order: priorities, then faults.
func (s *trackState) decide() []trackPost {
	type verdict struct {
		prio  uint8
		fault string
	}
	own := make([]verdict, len(s.instances))
	for i, ti := range s.instances {
		own[i].prio, own[i].fault, _ = s.own(ti)
	}
	var posts []trackPost
	for i, ti := range s.instances {
		drill, drilled := s.stepDownOf(ti)
		if drilled && ti.base != 255 {
			own[i].prio = stepDownPriority
		}
		if drilled && !ti.steppedDown {
			// Step down before lowering the priority: the master's last
			// advert says 0, not 1.
			posts = append(posts, trackPost{ti.name, vrrp.StepDown{Reason: drill.reason}})
		}
		ti.steppedDown = drilled
		fault := own[i].fault
		if fault == "" && ti.group != "" {
			for j, other := range s.instances {
				if j != i && other.group == ti.group && own[j].fault != "" {
					fault = fmt.Sprintf("sync group %s: %s is in fault: %s", ti.group, other.name, own[j].fault)
					break
				}
			}
		}
		if own[i].prio != ti.priority {
			ti.priority = own[i].prio
			posts = append(posts, trackPost{ti.name, vrrp.PriorityChanged{Priority: ti.priority}})
		}
		switch {
		case fault != "" && fault != ti.fault:
			posts = append(posts, trackPost{ti.name, vrrp.FaultDetected{Reason: fault}})
		case fault == "" && ti.fault != "":
			posts = append(posts, trackPost{ti.name, vrrp.FaultCleared{}})
		}
		ti.fault = fault
	}
	return posts
}

// stepDownOf returns the drill an instance is under: its own, or that
// of another member of its sync group (the group hands over together).
func (s *trackState) stepDownOf(ti *trackedInstance) (stepDown, bool) {
	if sd, ok := s.stepDowns[ti.name]; ok {
		return sd, true
	}
	if ti.group == "" {
		return stepDown{}, false
	}
	for _, other := range s.instances {
		if other.group == ti.group {
			if sd, ok := s.stepDowns[other.name]; ok {
				return sd, true
			}
		}
	}
	return stepDown{}, false
}

// nextStepDownEnd is when the earliest drill ends; zero without one.
func (s *trackState) nextStepDownEnd() time.Time {
	var next time.Time
	for _, sd := range s.stepDowns {
		if next.IsZero() || sd.until.Before(next) {
			next = sd.until
		}
	}
	return next
}

// endStepDowns ends the drills whose hold has passed at now.
func (s *trackState) endStepDowns(now time.Time) {
	for name, sd := range s.stepDowns {
		if !now.Before(sd.until) {
			delete(s.stepDowns, name)
		}
	}
}

// instance returns the tracking view of the named instance, or nil.
func (s *trackState) instance(name string) *trackedInstance {
	for _, ti := range s.instances {
		if ti.name == name {
			return ti
		}
	}
	return nil
}

// base returns an instance's configured priority.
func (s *trackState) base(name string) uint8 {
	if ti := s.instance(name); ti != nil {
		return ti.base
	}
	return 0
}

// configuredPriority is an instance's configured priority, as the last
// reload set it.
func (r *vrrpRuntime) configuredPriority(name string) uint8 {
	r.trackMu.Lock()
	defer r.trackMu.Unlock()
	return r.tracking.base(name)
}

// status returns an instance's tracks and fault for the status API.
func (s *trackState) status(name string) (string, []statusapi.VRRPTrack) {
	for _, ti := range s.instances {
		if ti.name == name {
			_, _, tracks := s.own(ti)
			return ti.fault, tracks
		}
	}
	return "", nil
}

// scriptTargetPrefix starts the health-target IDs of track scripts.
const scriptTargetPrefix = "vrrp_script "

// scriptTargets are the health targets of the scripts the instances
// track; a script no instance tracks is not run.
func scriptTargets(v config.VRRP) []health.Target {
	used := map[string]bool{}
	for _, in := range v.Instances {
		for _, ts := range in.TrackScripts {
			used[ts.Name] = true
		}
	}
	var out []health.Target
	for _, sc := range v.Scripts {
		if !used[sc.Name] {
			continue
		}
		p := sc.Run()
		out = append(out, health.Target{
			ID:     scriptTargetPrefix + sc.Name,
			Check:  health.ScriptCheck{Argv: p.Args, Path: p.Path, User: p.User, Timeout: sc.Timeout},
			Policy: health.Policy{Interval: sc.Interval, Rise: sc.Rise, Fall: sc.Fall},
		})
	}
	return out
}

// track runs the tracking loop until ctx ends: it applies updates and
// posts what they change. A reload waits for the posts in flight.
func (r *vrrpRuntime) track(ctx context.Context) {
	holds := r.clock.NewTimer() // the earliest step-down's end
	defer holds.Stop()
	for {
		var posts []trackPost
		select {
		case <-ctx.Done():
			return
		case now := <-holds.C():
			r.postMu.Lock()
			r.trackMu.Lock()
			r.tracking.endStepDowns(now)
			posts = r.tracking.decide()
		case u := <-r.updates:
			r.postMu.Lock()
			r.trackMu.Lock()
			switch u.kind {
			case "step-down":
				if u.until.IsZero() {
					delete(r.tracking.stepDowns, u.name)
				} else {
					r.tracking.stepDowns[u.name] = stepDown{until: u.until, reason: u.reason}
				}
			default:
				r.tracking.inputs[[2]string{u.kind, u.name}] = u.trackInput
			}
			posts = r.tracking.decide()
		}
		if next := r.tracking.nextStepDownEnd(); next.IsZero() {
			holds.Stop()
		} else {
			holds.ResetAt(next)
		}
		r.trackMu.Unlock()
		r.post(ctx, posts)
		r.postMu.Unlock()
	}
}

// post hands tracking's events to the instances, in order. Callers hold
// postMu.
func (r *vrrpRuntime) post(ctx context.Context, posts []trackPost) {
	for _, p := range posts {
		in := r.named(p.instance)
		if in == nil {
			continue
		}
		r.log.Info("vrrp tracking", "instance", p.instance, "event", fmt.Sprintf("%T", p.event), "detail", fmt.Sprintf("%+v", p.event))
		if err := in.inst.Post(ctx, p.event); err != nil {
			r.log.Error("vrrp tracking", "instance", p.instance, "err", err)
		}
	}
}

// update hands the tracking loop a change; it drops it once the runtime
// is stopping.
func (r *vrrpRuntime) update(ctx context.Context, u trackUpdate) {
	select {
	case r.updates <- u:
	case <-ctx.Done():
	}
}

// scriptChanged turns a track script's health transition into an update.
func scriptChanged(tr health.Transition) (trackUpdate, bool) {
	name, ok := strings.CutPrefix(tr.Target, scriptTargetPrefix)
	if !ok || tr.To == health.StateUnknown {
		return trackUpdate{}, false
	}
	return trackUpdate{kind: "script", name: name, trackInput: trackInput{known: true, up: tr.To == health.StateUp, reason: tr.Reason}}, true
}
