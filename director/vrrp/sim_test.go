package vrrp

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// simNet runs several Machines on one simulated link: adverts go through
// the codec (Marshal, then Unmarshal at each receiver), timers fire in
// time order, and the "switch" sends the virtual addresses' traffic to
// whoever announced them last, as hosts' ARP caches do.
type simNet struct {
	t           *testing.T
	now         time.Time
	nodes       []*simNode
	partitioned bool
	queue       []delivery
	arpOwner    *simNode
	log         []string
}

type simNode struct {
	name   string
	addr   netip.Addr
	m      *Machine
	timers map[Timer]time.Time
	holds  bool // has the virtual addresses
	frozen bool // a stalled VM: no timers, drops what it would receive
}

type delivery struct {
	to *simNode
	ev Event
}

func newSimNet(t *testing.T) *simNet { return &simNet{t: t, now: t0} }

func (s *simNet) add(name, addr string, priority uint8) *simNode {
	cfg := baseConfig()
	cfg.Version = Version3
	cfg.Priority = priority
	cfg.PrimaryAddress = netip.MustParseAddr(addr)
	m, err := NewMachine(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	n := &simNode{name: name, addr: cfg.PrimaryAddress, m: m, timers: map[Timer]time.Time{}}
	s.nodes = append(s.nodes, n)
	return n
}

func (s *simNet) do(n *simNode, ev Event) {
	s.queue = append(s.queue, delivery{n, ev})
	for len(s.queue) > 0 {
		d := s.queue[0]
		s.queue = s.queue[1:]
		if d.to.frozen {
			continue
		}
		s.apply(d.to, d.to.m.Step(s.now, d.ev))
	}
}

func (s *simNet) apply(n *simNode, acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case ArmTimer:
			n.timers[a.Timer] = a.At
		case StopTimer:
			delete(n.timers, a.Timer)
		case AddAddresses:
			n.holds = true
		case RemoveAddresses:
			n.holds = false
		case Announce:
			s.arpOwner = n
		case StateChanged:
			s.log = append(s.log, fmt.Sprintf("+%s %s %s->%s", s.now.Sub(t0), n.name, a.From, a.To))
		case SendAdvert:
			if s.partitioned {
				continue
			}
			b, err := a.Advert.Marshal(n.addr, IPv4Group)
			if err != nil {
				s.t.Fatalf("%s: marshal: %v", n.name, err)
			}
			for _, o := range s.nodes {
				if o == n {
					continue
				}
				adv, err := Unmarshal(b, n.addr, IPv4Group)
				if err != nil {
					s.t.Fatalf("%s: unmarshal: %v", o.name, err)
				}
				s.queue = append(s.queue, delivery{o, AdvertReceived{Src: n.addr, Advert: adv}})
			}
		case Discarded, Misconfigured:
			s.t.Fatalf("%s: unexpected %+v", n.name, a)
		}
	}
}

// run fires timers in order until t0+d.
func (s *simNet) run(d time.Duration) {
	end := t0.Add(d)
	for {
		var next *simNode
		var timer Timer
		var at time.Time
		for _, n := range s.nodes {
			if n.frozen {
				continue
			}
			for _, tm := range []Timer{AdverTimer, MasterDownTimer} {
				if when, ok := n.timers[tm]; ok && (next == nil || when.Before(at)) {
					next, timer, at = n, tm, when
				}
			}
		}
		if next == nil || at.After(end) {
			break
		}
		s.now = at
		delete(next.timers, timer)
		s.do(next, TimerExpired{Timer: timer})
	}
	s.now = end
}

// assertOneMaster checks the outcome a user sees: exactly one master, it
// alone holds the addresses, and the traffic goes to it.
func (s *simNet) assertOneMaster(want *simNode) {
	s.t.Helper()
	for _, n := range s.nodes {
		isWant := n == want
		if (n.m.State() == Master) != isWant || n.holds != isWant {
			s.t.Fatalf("%s: state %s, holds addresses %v; want only %s as master\nlog: %q",
				n.name, n.m.State(), n.holds, want.name, s.log)
		}
	}
	if s.arpOwner != want {
		name := "nobody"
		if s.arpOwner != nil {
			name = s.arpOwner.name
		}
		s.t.Fatalf("traffic goes to %s, the master is %s\nlog: %q", name, want.name, s.log)
	}
}

func TestSimHigherPriorityWinsElection(t *testing.T) {
	s := newSimNet(t)
	a := s.add("a", "10.81.0.1", 150)
	b := s.add("b", "10.81.0.2", 100)
	s.do(a, Startup{})
	s.do(b, Startup{})
	s.run(10 * time.Second)
	s.assertOneMaster(a)
	// a: 3 x 1 s + 106/256 s.
	want := []string{"+0s a initialize->backup", "+0s b initialize->backup", "+3.4140625s a backup->master"}
	if !slices.Equal(s.log, want) {
		t.Fatalf("log %q, want %q", s.log, want)
	}
}

func TestSimMasterShutdownHandsOverAfterSkewTime(t *testing.T) {
	s := newSimNet(t)
	a := s.add("a", "10.81.0.1", 150)
	b := s.add("b", "10.81.0.2", 100)
	s.do(a, Startup{})
	s.do(b, Startup{})
	s.run(10 * time.Second)
	s.do(a, Shutdown{})
	s.run(20 * time.Second)
	s.assertOneMaster(b)
	// b takes over 156/256 s after a's priority-0 advert, not 3.6 s.
	if last := s.log[len(s.log)-1]; last != "+10.609375s b backup->master" {
		t.Fatalf("last transition %q\nlog %q", last, s.log)
	}
}

func TestSimStartingHigherPriorityPreempts(t *testing.T) {
	s := newSimNet(t)
	a := s.add("a", "10.81.0.1", 150)
	b := s.add("b", "10.81.0.2", 100)
	s.do(b, Startup{})
	s.run(10 * time.Second)
	s.assertOneMaster(b)
	s.do(a, Startup{})
	s.run(20 * time.Second)
	s.assertOneMaster(a)
}

func TestSimAddressOwnerTakesOverAtStartup(t *testing.T) {
	s := newSimNet(t)
	owner := s.add("owner", "10.81.0.1", 255)
	b := s.add("b", "10.81.0.2", 100)
	s.do(b, Startup{})
	s.run(10 * time.Second)
	s.do(owner, Startup{})
	s.run(10 * time.Second)
	s.assertOneMaster(owner)
}

// Two masters after a partition heals: the loser sent gratuitous ARPs
// while partitioned; the winner must take the traffic back.
func TestSimPartitionHealsWinnerReclaimsTraffic(t *testing.T) {
	s := newSimNet(t)
	a := s.add("a", "10.81.0.1", 150)
	b := s.add("b", "10.81.0.2", 100)
	s.do(a, Startup{})
	s.do(b, Startup{})
	s.run(10 * time.Second)
	s.partitioned = true
	s.run(20 * time.Second)
	if a.m.State() != Master || b.m.State() != Master || s.arpOwner != b {
		t.Fatalf("partition: a %s, b %s; want two masters, traffic to b", a.m.State(), b.m.State())
	}
	s.partitioned = false
	s.run(30 * time.Second)
	s.assertOneMaster(a)
}

// Keepalived issue #166: the master's VM stalls (a snapshot); the backup
// takes over and sends gratuitous ARPs; the master, which saw none of
// this, resumes. It must still end up with the traffic.
func TestSimFrozenMasterResumesAndReclaimsTraffic(t *testing.T) {
	s := newSimNet(t)
	a := s.add("a", "10.81.0.1", 100)
	b := s.add("b", "10.81.0.2", 100) // equal priority: a loses ties, b wins them
	s.do(b, Startup{})
	s.run(10 * time.Second)
	s.do(a, Startup{})
	s.run(20 * time.Second)
	s.assertOneMaster(b)

	b.frozen = true
	s.run(30 * time.Second)
	if a.m.State() != Master || s.arpOwner != a {
		t.Fatalf("while b is frozen: a %s, traffic to %v", a.m.State(), s.arpOwner.name)
	}
	// b resumes: its overdue adver timer fires first, still as master.
	b.frozen = false
	s.run(40 * time.Second)
	s.assertOneMaster(b)
}

// A fault on the master moves the traffic at once (priority 0), and the
// recovered router preempts back.
func TestSimFaultMovesTrafficAndRecoveryPreempts(t *testing.T) {
	s := newSimNet(t)
	a := s.add("a", "10.81.0.1", 150)
	b := s.add("b", "10.81.0.2", 100)
	s.do(a, Startup{})
	s.do(b, Startup{})
	s.run(10 * time.Second)
	s.do(a, FaultDetected{Reason: "real servers down"})
	s.run(11 * time.Second)
	s.assertOneMaster(b)
	s.do(a, FaultCleared{})
	s.run(20 * time.Second)
	s.assertOneMaster(a)
}
