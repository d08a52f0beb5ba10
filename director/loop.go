package director

import (
	"context"
	"sync"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/internal/clock"
)

// The daemon is a step function: everything that happens to it is an
// event, and one goroutine (Run's) hands each to handle(now, event),
// which changes the daemon's state and sends the writes that follow.
// Other goroutines (the health scheduler, the VRRP instances, the status
// API's drills) only post events to the inbox; timers come from the
// injected clock.Clock, their deadlines set by handle. After each event
// handle publishes the daemon's state as an immutable snapshot
// (status_cache.go), which is all that other goroutines read of it.
// Check results are not events: a thousand a second would keep the loop
// rebuilding statuses nobody asked for. Each counts itself against its
// service, and the status API brings that service's last checks in from
// the scheduler when it next asks (status_cache.go).

// event is one thing the daemon's loop handles.
type event interface{ isEvent() }

type (
	// reloadRequested: read the config again (SIGHUP, Daemon.Reload);
	// the reload's error goes to reply.
	reloadRequested struct{ reply chan<- error }
	// healthChanged: real servers went up or down, in the order the
	// scheduler published them.
	healthChanged struct{ transitions []health.Transition }
	// vrrpChanged: VRRP instances changed state; the connection sync
	// daemon follows one of them.
	vrrpChanged struct{ instances []string }
	// drillChanged: a drill began or ended what BGP announces.
	drillChanged struct{}
	// resyncDue: time to read the kernel back and repair drift.
	resyncDue struct{}
	// retryDue: a failed write's backoff has passed.
	retryDue struct{}
	// bgpPollDue: time to read the BGP peers' states.
	bgpPollDue struct{}
	// stopRequested: lvsd is stopping (its context ended: a signal).
	stopRequested struct{}
)

func (reloadRequested) isEvent() {}
func (healthChanged) isEvent()   {}
func (vrrpChanged) isEvent()     {}
func (drillChanged) isEvent()    {}
func (resyncDue) isEvent()       {}
func (retryDue) isEvent()        {}
func (bgpPollDue) isEvent()      {}
func (stopRequested) isEvent()   {}

// inbox is where other goroutines post events for the loop. Posting
// never blocks: health transitions and VRRP instances are batched until
// the loop takes them, and drill kicks coalesce.
type inbox struct {
	wake chan struct{} // one pending wake-up

	// mu guards what other goroutines post until the loop takes it:
	// the inbox's own, never held while the loop handles anything.
	mu          sync.Mutex
	transitions []health.Transition
	instances   []string
	drill       bool
}

func newInbox() *inbox { return &inbox{wake: make(chan struct{}, 1)} }

func (b *inbox) post(f func()) {
	b.mu.Lock()
	f()
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *inbox) postTransition(tr health.Transition) {
	b.post(func() { b.transitions = append(b.transitions, tr) })
}

func (b *inbox) postVRRP(instance string) {
	b.post(func() { b.instances = append(b.instances, instance) })
}

func (b *inbox) postDrill() { b.post(func() { b.drill = true }) }

// take returns the posted events, oldest kind first, and empties the
// inbox.
func (b *inbox) take() []event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var evs []event
	if len(b.transitions) > 0 {
		evs = append(evs, healthChanged{b.transitions})
		b.transitions = nil
	}
	if len(b.instances) > 0 {
		evs = append(evs, vrrpChanged{b.instances})
		b.instances = nil
	}
	if b.drill {
		evs = append(evs, drillChanged{})
		b.drill = false
	}
	return evs
}

// deadlines are when the loop's timers fire next; zero is never.
type deadlines struct {
	resync, retry, bgpPoll time.Time
}

// handle applies one event and what follows from it: writes for the
// services whose health changed, retries that are due, the BGP
// announcements; then it publishes the state for other goroutines to
// read. It reports whether the daemon stopped.
func (d *Daemon) handle(now time.Time, ev event) (stopped bool) {
	switch ev := ev.(type) {
	case stopRequested:
		d.shutdown()
		return true
	case reloadRequested:
		err := d.reload()
		d.due.resync = now.Add(d.resyncInterval())
		d.publish() // before the reply: who asked for the reload sees it
		ev.reply <- err
	case healthChanged:
		for _, tr := range ev.transitions {
			d.onTransition(tr)
		}
		// The health shows before the writes it causes: whoever sees a
		// write in the kernel finds its reason in the status. Encoded
		// once, after the writes (below), unless a request comes first.
		d.publishWith(publishOptions{EncodeLater: true})
		d.applyDirty()
	case vrrpChanged:
		d.followSyncDaemon(ev.instances)
	case drillChanged:
	case resyncDue:
		d.resync()
		d.due.resync = now.Add(d.resyncInterval())
	case retryDue:
	case bgpPollDue:
		d.bgpPollPeers()
		d.due.bgpPoll = now.Add(d.bgpPollInterval())
	}
	res, next := d.rec.Retry(now)
	d.report(res)
	d.due.retry = next
	d.publish()
	d.bgpUpdate() // from the published snapshot
	return false
}

func (d *Daemon) resyncInterval() time.Duration { return d.cfg.LVSD.ResyncInterval }

func (d *Daemon) bgpPollInterval() time.Duration {
	if iv := d.opts.BGP.Interval; iv > 0 {
		return iv
	}
	return time.Second
}

// loop takes events until ctx ends, handing each to handle.
func (d *Daemon) loop(ctx context.Context) {
	timers := [3]clock.Timer{d.clock.NewTimer(), d.clock.NewTimer(), d.clock.NewTimer()}
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
	}()
	arm := func() {
		for i, at := range [3]time.Time{d.due.resync, d.due.retry, d.due.bgpPoll} {
			if at.IsZero() {
				timers[i].Stop()
			} else {
				timers[i].ResetAt(at)
			}
		}
	}
	arm()
	for {
		var evs []event
		select {
		case <-ctx.Done():
			evs = []event{stopRequested{}}
		case reply := <-d.reloads:
			evs = []event{reloadRequested{reply}}
		case <-d.inbox.wake:
			evs = d.inbox.take()
		case <-timers[0].C():
			evs = []event{resyncDue{}}
		case <-timers[1].C():
			evs = []event{retryDue{}}
		case <-timers[2].C():
			evs = []event{bgpPollDue{}}
		}
		for _, ev := range evs {
			if d.handle(d.clock.Now(), ev) {
				return
			}
		}
		arm()
	}
}
