package diag

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/statusapi"
)

// fakePair is two VRRP directors in one: lvs1 master until it is asked
// to step down, lvs2 master once lvs1 let go, lvs1 master again when the
// drill ends (it preempts). down makes the VIP refuse connections while
// nobody holds it (between the step-down and the takeover).
type fakePair struct {
	mu       sync.Mutex
	stepped  bool
	endedAt  time.Time
	steppedT time.Time
	down     *bool // VIP not answering
	actions  []string
}

type fakeDirector struct {
	p    *fakePair
	name string
}

func (f fakeDirector) String() string { return f.name }

func (f fakeDirector) Status(context.Context) (statusapi.Status, error) {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	now := time.Now()
	lvs1Master := !f.p.stepped && (f.p.endedAt.IsZero() || now.Sub(f.p.endedAt) > 200*time.Millisecond)
	lvs2Master := f.p.stepped && now.Sub(f.p.steppedT) > 100*time.Millisecond || !f.p.endedAt.IsZero() && !lvs1Master
	in := statusapi.VRRPStatus{Name: "VI_1", VIPs: []string{"10.90.0.100"}, State: "backup", Priority: 150, ConfiguredPriority: 150, MasterPriority: 100}
	if f.name == "lvs1" {
		if lvs1Master {
			in.State, in.MasterSince = "master", now
		}
		if f.p.stepped {
			in.Priority, in.SteppedDownUntil = 1, now.Add(time.Minute)
		}
	} else {
		in.Priority, in.ConfiguredPriority, in.MasterPriority = 100, 100, 150
		if lvs2Master {
			in.State = "master"
		}
	}
	return statusapi.Status{VRRP: []statusapi.VRRPStatus{in}}, nil
}

func (f fakeDirector) StepDown(_ context.Context, instance string, hold time.Duration) (statusapi.DrillAction, error) {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	f.p.actions = append(f.p.actions, fmt.Sprintf("%s step-down %s %s", f.name, instance, hold))
	f.p.stepped, f.p.steppedT = true, time.Now()
	return statusapi.DrillAction{Active: true}, nil
}

func (f fakeDirector) EndStepDown(_ context.Context, instance string) (statusapi.DrillAction, error) {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	f.p.actions = append(f.p.actions, fmt.Sprintf("%s end %s", f.name, instance))
	f.p.stepped, f.p.endedAt = false, time.Now()
	return statusapi.DrillAction{}, nil
}

func (f fakeDirector) Withdraw(context.Context, string, time.Duration) (statusapi.DrillAction, error) {
	return statusapi.DrillAction{}, errors.New("no bgp")
}

func (f fakeDirector) EndWithdraw(context.Context, string) (statusapi.DrillAction, error) {
	return statusapi.DrillAction{}, errors.New("no bgp")
}

// A VRRP drill against a fake pair and a loopback HTTP server: it acts
// on the master (whichever --lvsd comes first), sees lvs2 take over,
// ends the drill, sees lvs1 master again, and counts the requests that
// failed while the VIP was nobody's.
func TestRunDrillVRRPMeasuresTheHandoverAndEndsTheDrill(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "served") })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	p := &fakePair{}
	var dialer net.Dialer
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		p.mu.Lock()
		nobody := p.stepped && time.Since(p.steppedT) < 100*time.Millisecond
		p.mu.Unlock()
		if nobody {
			return nil, errors.New("connect: no route to host")
		}
		return dialer.DialContext(ctx, network, ln.Addr().String())
	}
	facts, err := RunDrill(context.Background(), DrillOptions{
		Kind: DrillVRRP, VIP: netip.MustParseAddr("10.90.0.100"), Port: port,
		Directors: []DrillDirector{fakeDirector{p, "lvs2"}, fakeDirector{p, "lvs1"}},
		Warmup:    200 * time.Millisecond, Observe: 400 * time.Millisecond, Restore: 3 * time.Second,
		Interval: 10 * time.Millisecond, Long: 2, LongInterval: 20 * time.Millisecond, Dial: dial,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.actions, "; "); got != "lvs1 step-down VI_1 1m0s; lvs1 end VI_1" {
		t.Errorf("actions %q", got)
	}
	s := facts.Summarize()
	if facts.Director != "lvs1" || facts.NewDirector != "lvs2" || s.Released == notSeen || s.TookOver == notSeen || s.Restored == notSeen {
		t.Errorf("facts: director %s new %s, summary %+v", facts.Director, facts.NewDirector, s)
	}
	if facts.RestoredState != "lvs1 master again" {
		t.Errorf("restored %q", facts.RestoredState)
	}
	if s.Failed == 0 || s.Failed > s.Requests/2 || s.Long != 2 || s.LongBroken != 0 || s.FirstForward == notSeen {
		t.Errorf("summary %+v: want some failed requests while nobody held the VIP, none after", s)
	}
	ids := ""
	for _, f := range facts.Findings() {
		ids += f.ID + " "
	}
	if ids != "drill-requests-failed " {
		t.Errorf("findings %q", ids)
	}
}

// Nothing is changed when the drill cannot start.
func TestRunDrillRefusesWithoutAMasterOrAnAnsweringVIP(t *testing.T) {
	p := &fakePair{}
	refuse := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, errors.New("connection refused")
	}
	_, err := RunDrill(context.Background(), DrillOptions{Kind: DrillVRRP, VIP: netip.MustParseAddr("10.90.0.100"), Port: 80,
		Directors: []DrillDirector{fakeDirector{p, "lvs1"}}, Dial: refuse})
	if err == nil || !strings.Contains(err.Error(), "does not answer before the drill") {
		t.Errorf("RunDrill with the VIP down = %v", err)
	}
	_, err = RunDrill(context.Background(), DrillOptions{Kind: DrillVRRP, VIP: netip.MustParseAddr("10.90.0.100"), Port: 80,
		Directors: []DrillDirector{fakeDirector{p, "lvs2"}}, Dial: refuse})
	if err == nil || !strings.Contains(err.Error(), "is vrrp master of 10.90.0.100") {
		t.Errorf("RunDrill with no master given = %v", err)
	}
	if len(p.actions) != 0 {
		t.Errorf("actions %v", p.actions)
	}
}
