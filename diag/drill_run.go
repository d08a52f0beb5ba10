package diag

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lvskit/lvskit/director/statusapi"
)

// DrillDirector is one director's lvsd as the drill reaches it
// (statusapi.Client): its status, and the drill actions, which lvsd
// serves only on its unix socket.
type DrillDirector interface {
	Status(ctx context.Context) (statusapi.Status, error)
	StepDown(ctx context.Context, instance string, hold time.Duration) (statusapi.DrillAction, error)
	EndStepDown(ctx context.Context, instance string) (statusapi.DrillAction, error)
	Withdraw(ctx context.Context, vip string, hold time.Duration) (statusapi.DrillAction, error)
	EndWithdraw(ctx context.Context, vip string) (statusapi.DrillAction, error)
	// String names the director in the report (its --lvsd address).
	String() string
}

// DrillOptions configure RunDrill. Zero durations take the defaults.
type DrillOptions struct {
	Kind DrillKind
	VIP  netip.Addr
	Port uint16
	// Directors are the lvsds to read. VRRP: the drill acts on the one
	// that is master of the VIP; BGP: on the first.
	Directors []DrillDirector
	// Hold is the director's safety net: it restores by itself after it
	// if the drill never ends it (default 60s).
	Hold time.Duration
	// Warmup is the probing before the action (default 1s); Observe how
	// long the handover is watched before the drill ends it (default
	// 5s); Restore how long the restore may take (default 20s).
	Warmup, Observe, Restore time.Duration
	// Interval is between new connections (default 50ms); Timeout bounds
	// each (default 1s).
	Interval, Timeout time.Duration
	// Long is the number of long-lived connections opened before the
	// action (default 8), each asked again every LongInterval (default
	// 200ms).
	Long         int
	LongInterval time.Duration
	// Host and Path make the HTTP request (default the VIP and "/").
	Host, Path string
	// Interface, if set, is watched for gratuitous ARP (needs root).
	Interface string
	ARP       ARPProber
	// Dial opens connections to the VIP; nil uses a net.Dialer.
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger *slog.Logger
}

func (o *DrillOptions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Hold, statusapi.DefaultDrillHold)
	def(&o.Warmup, time.Second)
	def(&o.Observe, 5*time.Second)
	def(&o.Restore, 20*time.Second)
	def(&o.Interval, 50*time.Millisecond)
	def(&o.Timeout, time.Second)
	def(&o.LongInterval, 200*time.Millisecond)
	if o.Long < 0 {
		o.Long = 0
	} else if o.Long == 0 {
		o.Long = 8
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.Host == "" {
		o.Host = o.VIP.String()
	}
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = d.DialContext
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// statusPoll is how often the directors' status is read during a drill.
const statusPoll = 50 * time.Millisecond

// drill is one run: the options, the facts as they are gathered.
type drill struct {
	o     DrillOptions
	facts DrillFacts
	acted DrillDirector
	peers []DrillDirector
	// instance is the VRRP instance (VRRP); wasMaster what the acted
	// director should be again after the restore.
	instance string

	mu sync.Mutex // guards facts.Probes and facts.Long while probing
}

// RunDrill hands the VIP over on purpose and measures it from here. It
// refuses to start when the VIP does not answer or no director holds it
// (nothing is changed then); once the action is accepted it always ends
// the drill (and the director's hold ends it if this process dies).
func RunDrill(ctx context.Context, o DrillOptions) (*DrillFacts, error) {
	o.defaults()
	if len(o.Directors) == 0 {
		return nil, errors.New("drill: no director: give --lvsd (the unix socket of the director to act on, and the other directors to read)")
	}
	d := &drill{o: o, facts: DrillFacts{Kind: o.Kind, VIP: o.VIP, Port: o.Port, Hold: o.Hold, Start: time.Now()}}
	if err := d.pick(ctx); err != nil {
		return nil, err
	}
	if err := d.request(ctx); err != nil {
		return nil, fmt.Errorf("drill: %s:%d does not answer before the drill (not drilling): %w", o.VIP, o.Port, err)
	}
	conns, err := d.openLong(ctx)
	if err != nil {
		return nil, err
	}

	probeCtx, stopProbes := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopProbes(); wg.Wait() }()
	wg.Go(func() { d.probeLoop(probeCtx, &wg) })
	for i, c := range conns {
		wg.Go(func() { d.keepAsking(probeCtx, i, c) })
	}
	var arp chan ARPCapture
	if o.Interface != "" && o.ARP != nil {
		arp = make(chan ARPCapture, 1)
		window := o.Warmup + o.Observe + o.Restore + 5*time.Second
		wg.Go(func() {
			c, err := o.ARP.Probe(probeCtx, o.Interface, nil, window)
			if err != nil {
				d.note(fmt.Sprintf("gratuitous ARP not watched on %s: %v", o.Interface, err))
				close(arp)
				return
			}
			arp <- c
		})
	}

	if err := wait(ctx, o.Warmup); err != nil {
		return nil, err
	}
	if err := d.act(ctx); err != nil {
		return nil, err
	}
	d.watchHandover(ctx)
	endErr := d.end()
	if endErr == nil {
		d.watchRestore(ctx)
	} else {
		d.note(fmt.Sprintf("ending the drill failed (%v): %s restores by itself when the hold (%s) ends", endErr, d.acted, o.Hold))
	}
	// A last second of probing sees the hand-back settle.
	_ = wait(ctx, time.Second)
	stopProbes()
	if arp != nil {
		if c, ok := <-arp; ok {
			d.facts.ARPWatched = true
			for _, p := range c.Packets {
				if p.Gratuitous() && p.SenderIP == o.VIP {
					d.facts.GARPs = append(d.facts.GARPs, GARP{At: p.At, MAC: p.SenderMAC})
				}
			}
		}
	}
	wg.Wait()
	for _, c := range conns {
		c.c.Close()
	}
	d.facts.End = time.Now()
	slices.SortFunc(d.facts.Probes, func(a, b DrillProbe) int { return a.Start.Compare(b.Start) })
	return &d.facts, nil
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *drill) note(s string) {
	d.mu.Lock()
	d.facts.Notes = append(d.facts.Notes, s)
	d.mu.Unlock()
}

// pick finds the director to act on and the target, and refuses when
// there is nothing to hand over.
func (d *drill) pick(ctx context.Context) error {
	vip := d.o.VIP.String()
	var masters []string
	for i, dir := range d.o.Directors {
		st, err := dir.Status(ctx)
		if err != nil {
			return fmt.Errorf("drill: %w", err)
		}
		switch d.o.Kind {
		case DrillVRRP:
			if in := masterOf(st, vip); in != "" && d.acted == nil {
				d.acted, d.instance = dir, in
				masters = append(masters, dir.String())
				continue
			} else if in != "" {
				masters = append(masters, dir.String())
			}
		case DrillBGP:
			if i == 0 {
				if st.BGP == nil {
					return fmt.Errorf("drill: %s has no bgp section: use --kind vrrp, or give the BGP director first", dir)
				}
				if !slices.ContainsFunc(st.BGP.VIPs, func(v statusapi.BGPVIPStatus) bool { return v.Address == vip && v.Announced }) {
					return fmt.Errorf("drill: %s does not announce %s now: nothing to withdraw", dir, vip)
				}
				d.acted = dir
				continue
			}
		default:
			return fmt.Errorf("drill: kind %q: want vrrp or bgp", d.o.Kind)
		}
		d.peers = append(d.peers, dir)
	}
	if d.acted == nil {
		return fmt.Errorf("drill: none of the directors given (%s) is vrrp master of %s: give the master's --lvsd", names(d.o.Directors), vip)
	}
	if len(masters) > 1 {
		return fmt.Errorf("drill: %s are all master of %s (split brain): fix that first (lvsdiag vrrp --interface IF)", strings.Join(masters, " and "), vip)
	}
	d.facts.Director = d.acted.String()
	d.facts.Target = vip
	if d.o.Kind == DrillVRRP {
		d.facts.Target = d.instance
		if len(d.peers) == 0 {
			d.note("no peer's status was given (--lvsd for each director): the takeover is not timed")
		}
	} else {
		d.note("with ECMP the other directors serve all along: the first request through the new path is the first after the withdraw; the router's FIB change is seen on the router")
	}
	for _, p := range d.peers {
		d.facts.Peers = append(d.facts.Peers, p.String())
	}
	return nil
}

func names(ds []DrillDirector) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.String())
	}
	return strings.Join(out, ", ")
}

// masterOf is the VRRP instance of st that is master of vip, if any.
func masterOf(st statusapi.Status, vip string) string {
	for _, in := range st.VRRP {
		if in.State == "master" && slices.Contains(in.VIPs, vip) {
			return in.Name
		}
	}
	return ""
}

func instanceOf(st statusapi.Status, name string) (statusapi.VRRPStatus, bool) {
	for _, in := range st.VRRP {
		if in.Name == name {
			return in, true
		}
	}
	return statusapi.VRRPStatus{}, false
}

func (d *drill) act(ctx context.Context) error {
	d.facts.Requested = time.Now()
	var err error
	switch d.o.Kind {
	case DrillVRRP:
		_, err = d.acted.StepDown(ctx, d.instance, d.o.Hold)
	default:
		_, err = d.acted.Withdraw(ctx, d.o.VIP.String(), d.o.Hold)
	}
	if err != nil {
		return fmt.Errorf("drill: %w", err)
	}
	d.facts.Accepted = time.Now()
	return nil
}

// watchHandover reads the directors until Observe has passed since the
// request (and at least until the takeover, up to twice Observe).
func (d *drill) watchHandover(ctx context.Context) {
	deadline := d.facts.Requested.Add(d.o.Observe)
	for {
		now := time.Now()
		if d.facts.Released.IsZero() {
			if st, err := d.acted.Status(ctx); err == nil && d.released(st) {
				d.facts.Released = lvsdTime(d.releasedAt(st), d.facts.Requested, now)
			}
		}
		if d.o.Kind == DrillVRRP && d.facts.TookOver.IsZero() {
			for _, p := range d.peers {
				st, err := p.Status(ctx)
				if err != nil {
					continue
				}
				if in := masterOf(st, d.o.VIP.String()); in != "" {
					in, _ := instanceOf(st, in)
					d.facts.TookOver, d.facts.NewDirector = lvsdTime(in.MasterSince, d.facts.Requested, now), p.String()
					break
				}
			}
		}
		done := !d.facts.Released.IsZero() && (d.o.Kind == DrillBGP || !d.facts.TookOver.IsZero())
		if now.After(deadline) && (done || now.After(deadline.Add(d.o.Observe))) || wait(ctx, statusPoll) != nil {
			return
		}
	}
}

// lvsdTime is the time lvsd reported for a transition when it is
// consistent with ours (between the request and now: same clock, or
// clocks in step), else the time it was seen.
func lvsdTime(reported, requested, seen time.Time) time.Time {
	if !reported.IsZero() && !reported.Before(requested) && !reported.After(seen) {
		return reported
	}
	return seen
}

func (d *drill) released(st statusapi.Status) bool {
	if d.o.Kind == DrillVRRP {
		in, ok := instanceOf(st, d.instance)
		return ok && in.State != "master"
	}
	return st.BGP != nil && !slices.ContainsFunc(st.BGP.VIPs, func(v statusapi.BGPVIPStatus) bool { return v.Address == d.o.VIP.String() && v.Announced })
}

func (d *drill) releasedAt(st statusapi.Status) time.Time {
	if d.o.Kind == DrillVRRP {
		in, _ := instanceOf(st, d.instance)
		return in.Since
	}
	if st.BGP != nil {
		for _, v := range st.BGP.VIPs {
			if v.Address == d.o.VIP.String() {
				return v.Since
			}
		}
	}
	return time.Time{}
}

// end ends the drill on the director; it runs even when ctx is done
// (Ctrl-C): the director must not be left stepped down until the hold.
func (d *drill) end() error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(context.Background()), 10*time.Second)
	defer cancel()
	var err error
	if d.o.Kind == DrillVRRP {
		_, err = d.acted.EndStepDown(ctx, d.instance)
	} else {
		_, err = d.acted.EndWithdraw(ctx, d.o.VIP.String())
	}
	d.facts.Ended = time.Now()
	return err
}

// watchRestore reads the acted director until its original state is
// back: VRRP: priority restored, and master again unless it does not
// preempt or a peer outranks it; BGP: the VIP announced again.
func (d *drill) watchRestore(ctx context.Context) {
	deadline := d.facts.Ended.Add(d.o.Restore)
	for time.Now().Before(deadline) {
		st, err := d.acted.Status(ctx)
		if err == nil {
			if state, ok := d.restored(ctx, st); ok {
				d.facts.Restored, d.facts.RestoredState = time.Now(), state
				return
			}
		}
		if wait(ctx, statusPoll) != nil {
			return
		}
	}
}

func (d *drill) restored(ctx context.Context, st statusapi.Status) (string, bool) {
	if d.o.Kind == DrillBGP {
		if st.BGP != nil && slices.ContainsFunc(st.BGP.VIPs, func(v statusapi.BGPVIPStatus) bool { return v.Address == d.o.VIP.String() && v.Announced }) {
			return d.acted.String() + " announces " + d.o.VIP.String() + " again", true
		}
		return "", false
	}
	in, ok := instanceOf(st, d.instance)
	if !ok || !in.SteppedDownUntil.IsZero() || in.Priority != in.ConfiguredPriority {
		return "", false
	}
	if in.State == "master" {
		return d.acted.String() + " master again", true
	}
	if in.NoPreempt || in.MasterPriority > in.Priority {
		return fmt.Sprintf("%s backup at priority %d (%s)", d.acted, in.Priority, map[bool]string{true: "nopreempt", false: "outranked"}[in.NoPreempt]), true
	}
	return "", false
}

// openLong opens the long-lived connections, each answered once.
func (d *drill) openLong(ctx context.Context) ([]*keptConn, error) {
	var conns []*keptConn
	for range d.o.Long {
		c, err := d.dial(ctx)
		if err == nil {
			err = c.ask(d.o)
		}
		if err != nil {
			for _, c := range conns {
				c.c.Close()
			}
			return nil, fmt.Errorf("drill: opening a long-lived connection to %s:%d: %w", d.o.VIP, d.o.Port, err)
		}
		conns = append(conns, c)
		d.facts.Long = append(d.facts.Long, DrillConn{Opened: time.Now(), Requests: 1})
	}
	return conns, nil
}

func (d *drill) dial(ctx context.Context) (*keptConn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	c, err := d.o.Dial(ctx, "tcp", netip.AddrPortFrom(d.o.VIP, d.o.Port).String())
	if err != nil {
		return nil, err
	}
	return &keptConn{c: c, r: bufio.NewReader(c)}, nil
}

// keepAsking asks on long-lived connection i every LongInterval until
// ctx ends or a request fails.
func (d *drill) keepAsking(ctx context.Context, i int, c *keptConn) {
	t := time.NewTicker(d.o.LongInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.ask(d.o)
		now := time.Now()
		if err != nil && ctx.Err() != nil {
			return // cut short by the end, not broken
		}
		d.mu.Lock()
		d.facts.Long[i].Requests++
		if err != nil {
			d.facts.Long[i].Broken, d.facts.Long[i].Err = now, err.Error()
		}
		d.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// probeLoop starts a new connection every Interval until ctx ends; each
// runs in its own goroutine (a slow one does not delay the next), owned
// by wg.
func (d *drill) probeLoop(ctx context.Context, wg *sync.WaitGroup) {
	t := time.NewTicker(d.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wg.Go(func() {
			p := DrillProbe{Start: time.Now()}
			err := d.request(context.WithoutCancel(ctx))
			p.End, p.OK = time.Now(), err == nil
			if err != nil {
				p.Err = err.Error()
			}
			d.mu.Lock()
			d.facts.Probes = append(d.facts.Probes, p)
			d.mu.Unlock()
		})
	}
}

// request is one short connection: connect, one HTTP request, the
// answer's status line.
func (d *drill) request(ctx context.Context) error {
	c, err := d.dial(ctx)
	if err != nil {
		return err
	}
	defer c.c.Close()
	_, err = getOnce(c.c, c.r, d.o, "HTTP/1.0")
	return err
}

// keptConn is one long-lived connection (HTTP/1.1 keep-alive).
type keptConn struct {
	c net.Conn
	r *bufio.Reader
}

func (k *keptConn) ask(o DrillOptions) error {
	closed, err := getOnce(k.c, k.r, o, "HTTP/1.1")
	if err != nil {
		return err
	}
	if closed {
		return errors.New("the server closed the keep-alive connection (not a drill failure: use a server that keeps connections open)")
	}
	return nil
}

// getOnce sends one GET o.Path with o.Host on c, in the HTTP version
// given, and reads the answer through r; an answer of 5xx is an error.
// closed says the server closes the connection after it.
func getOnce(c net.Conn, r *bufio.Reader, o DrillOptions, version string) (closed bool, err error) {
	c.SetDeadline(time.Now().Add(o.Timeout))
	if _, err := fmt.Fprintf(c, "GET %s %s\r\nHost: %s\r\nUser-Agent: lvsdiag-drill\r\n\r\n", o.Path, version, o.Host); err != nil {
		return false, err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return false, err
	}
	if resp.StatusCode >= 500 {
		return false, fmt.Errorf("answer %s", resp.Status)
	}
	return resp.Close, nil
}
