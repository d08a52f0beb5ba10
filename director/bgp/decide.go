package bgp

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Phase is where lvsd is in its life, as far as announcing goes.
type Phase int

// The phases.
const (
	// Starting: the first apply has not succeeded yet; nothing is
	// announced, since the kernel may not hold the services.
	Starting Phase = iota
	// Running: services are programmed; health decides.
	Running
	// Stopping: SIGTERM; every route is withdrawn before BGP stops and
	// before IPVS is flushed or left.
	Stopping
)

// Inputs are the director-wide facts a decision rests on.
type Inputs struct {
	Phase Phase
	// KernelErr is the last IPVS write error, nil when the last apply
	// succeeded: a director that cannot program its kernel withdraws.
	KernelErr error
	// Low and High are the watermarks: shares (0 to 1) of a service's real
	// servers that are up. An announced VIP is withdrawn when a service
	// falls below Low (or has none up); a withdrawn one is announced again
	// when every service has reached High (and one up at least).
	Low, High float64
}

// ServiceHealth is how many of a service's real servers are up.
type ServiceHealth struct {
	Name      string // for reasons: "TCP 192.0.2.1:80"
	Up, Total int
}

// VIP is one announced address and the services behind it.
type VIP struct {
	Address  netip.Addr
	Services []ServiceHealth
	// NeedMaster is set for announce: both: announced only while Master.
	NeedMaster bool
	Master     bool
}

// Decision says whether a VIP is announced, and why, in words for the
// timeline, the status API and lvsdiag.
type Decision struct {
	Announce bool
	Reason   string
}

// Decide is the announcing rule as a pure function of the director's state,
// the VIP's services' health and whether the VIP is announced now (the
// watermarks give it hysteresis: between them nothing changes).
func Decide(in Inputs, vip VIP, announced bool) Decision {
	switch {
	case in.Phase == Starting:
		return Decision{false, "starting: withdrawn until the first apply succeeds"}
	case in.Phase == Stopping:
		return Decision{false, "stopping: withdrawn before IPVS is left or flushed"}
	case in.KernelErr != nil:
		return Decision{false, fmt.Sprintf("IPVS writes failing: %v", in.KernelErr)}
	case vip.NeedMaster && !vip.Master:
		return Decision{false, "not VRRP master (announce: both)"}
	case len(vip.Services) == 0:
		return Decision{false, "no service"}
	}
	if announced {
		for _, s := range vip.Services {
			if s.Up == 0 {
				return Decision{false, fmt.Sprintf("%s has no real server up", s.Name)}
			}
			if share(s) < in.Low {
				return Decision{false, fmt.Sprintf("%s has %d of %d real servers up, below the low watermark %s", s.Name, s.Up, s.Total, percent(in.Low))}
			}
		}
		return Decision{true, fmt.Sprintf("every service at or above the low watermark %s", percent(in.Low))}
	}
	for _, s := range vip.Services {
		if s.Up == 0 {
			return Decision{false, fmt.Sprintf("%s has no real server up", s.Name)}
		}
		if share(s) < in.High {
			return Decision{false, fmt.Sprintf("%s has %d of %d real servers up, below the high watermark %s needed to announce again", s.Name, s.Up, s.Total, percent(in.High))}
		}
	}
	return Decision{true, fmt.Sprintf("every service at or above the high watermark %s", percent(in.High))}
}

func share(s ServiceHealth) float64 {
	if s.Total <= 0 {
		return 0
	}
	return float64(s.Up) / float64(s.Total)
}

func percent(r float64) string { return strconv.FormatFloat(r*100, 'f', -1, 64) + "%" }
