package health

import "time"

// CheckOnEventLoop runs the checks of cs at once on one event loop of
// their own, as the Scheduler runs them, and returns their results in
// the order of cs. ok is false when there is no event loop here or one
// of cs cannot run on it.
func CheckOnEventLoop(netns string, cs ...Checker) (rs []Result, ok bool) {
	probes := make([]*probe, len(cs))
	index := map[*entry]int{}
	for i, c := range cs {
		t, ok := loopTargetOf(c)
		if !ok {
			return nil, false
		}
		e := &entry{}
		index[e] = i
		probes[i] = &probe{}
		probes[i].reset(t, e)
	}
	results := make(chan loopResult, len(cs))
	l, err := startNetLoop(netLoopOptions{NetNS: netns, Deliver: func(batch []loopResult, _ time.Time) {
		for _, r := range batch {
			results <- r
		}
	}})
	if err != nil {
		return nil, false
	}
	defer l.stop()
	for _, p := range probes {
		l.submit(p)
	}
	rs = make([]Result, len(cs))
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for range cs {
		select {
		case r := <-results:
			rs[index[r.e]] = r.r
		case <-timeout.C:
			panic("event loop: no result within a minute")
		}
	}
	return rs, true
}

// Wire helpers of the ping check, for its tests.
var (
	AppendEcho   = appendEcho
	ICMPChecksum = icmpChecksum
	IsEchoReply  = isEchoReply
)
