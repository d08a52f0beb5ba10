package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	ours   = "10.81.0.5"
	higher = "10.81.0.9" // a peer whose address wins ties
	lower  = "10.81.0.2" // a peer whose address loses ties
)

func baseConfig() Config {
	return Config{
		VRID:           51,
		Version:        Version2,
		Priority:       100,
		AdvertInterval: time.Second,
		Addresses:      addrs("192.0.2.10", "192.0.2.11"),
		PrimaryAddress: netip.MustParseAddr(ours),
	}
}

// harness steps one Machine and compares its actions, rendered as short
// strings with timer deadlines relative to the event's time.
type harness struct {
	t   *testing.T
	m   *Machine
	now time.Time
}

func newHarness(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	cfg := baseConfig()
	if edit != nil {
		edit(&cfg)
	}
	m, err := NewMachine(cfg)
	if err != nil {
		t.Fatalf("NewMachine: %v", err)
	}
	return &harness{t: t, m: m, now: t0}
}

// at moves the clock to t0+d.
func (h *harness) at(d time.Duration) *harness {
	h.now = t0.Add(d)
	return h
}

func (h *harness) step(ev Event, want ...string) []Action {
	h.t.Helper()
	acts := h.m.Step(h.now, ev)
	got := render(h.now, acts)
	if !slices.Equal(got, want) {
		h.t.Fatalf("at +%s, %T%+v:\n got  %q\n want %q", h.now.Sub(t0), ev, ev, got, want)
	}
	return acts
}

// advert is an advert from src as a correctly configured peer sends it.
func (h *harness) advert(src string, priority uint8) AdvertReceived {
	authType, authData := h.m.cfg.authFields()
	if h.m.cfg.Version == Version3 {
		authType, authData = AuthNone, [8]byte{}
	}
	return AdvertReceived{Src: netip.MustParseAddr(src), Advert: Advertisement{
		Version: h.m.cfg.Version, VRID: h.m.cfg.VRID, Priority: priority,
		Interval: h.m.cfg.AdvertInterval, Addresses: slices.Clone(h.m.cfg.Addresses),
		AuthType: authType, AuthData: authData,
	}}
}

var sentinels = map[string]error{
	"ErrAddressFamily": ErrAddressFamily, "ErrOwnAdvert": ErrOwnAdvert, "ErrBadVersion": ErrBadVersion,
	"ErrVRID": ErrVRID, "ErrAuth": ErrAuth, "ErrInterval": ErrInterval, "ErrAddressMismatch": ErrAddressMismatch,
}

func sentinelName(err error) string {
	for name, s := range sentinels {
		if errors.Is(err, s) {
			return name
		}
	}
	return "unknown:" + err.Error()
}

func render(now time.Time, acts []Action) []string {
	var out []string
	for _, a := range acts {
		switch a := a.(type) {
		case SendAdvert:
			out = append(out, fmt.Sprintf("send priority %d", a.Advert.Priority))
		case AddAddresses:
			out = append(out, fmt.Sprintf("add %d addresses accept=%v", len(a.Addresses), a.Accept))
		case RemoveAddresses:
			out = append(out, fmt.Sprintf("remove %d addresses", len(a.Addresses)))
		case Announce:
			out = append(out, fmt.Sprintf("announce %d addresses", len(a.Addresses)))
		case ArmTimer:
			out = append(out, fmt.Sprintf("arm %s +%s", a.Timer, a.At.Sub(now)))
		case StopTimer:
			out = append(out, "stop "+a.Timer.String())
		case StateChanged:
			out = append(out, fmt.Sprintf("%s -> %s", a.From, a.To))
		case Discarded:
			out = append(out, "discard "+sentinelName(a.Err))
		case Misconfigured:
			out = append(out, "misconfigured "+sentinelName(a.Err))
		default:
			out = append(out, fmt.Sprintf("unknown %T", a))
		}
	}
	return out
}

// Down interval for priority 100, version 2, 1 s: 3 s + 156/256 s.
const down100 = "3.609375s"

// --- Initialize (RFC 5798 6.4.1) ---

func TestStartupAsBackupRemovesLeftoverAddressesAndWaits(t *testing.T) {
	h := newHarness(t, nil)
	h.step(Startup{}, "remove 2 addresses", "initialize -> backup", "arm master-down-timer +"+down100)
	if s := h.m.Status(); s.State != Backup || s.MasterDownInterval != 3609375*time.Microsecond {
		t.Fatalf("status %+v", s)
	}
}

func TestStartupAsAddressOwnerBecomesMasterAtOnce(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Priority = 255 })
	h.step(Startup{},
		"send priority 255", "initialize -> master", "add 2 addresses accept=true",
		"announce 2 addresses", "arm adver-timer +1s")
}

func TestInitializeIgnoresAdvertsTimersAndSecondShutdown(t *testing.T) {
	h := newHarness(t, nil)
	h.step(h.advert(higher, 200))
	h.step(TimerExpired{Timer: MasterDownTimer})
	h.step(TimerExpired{Timer: AdverTimer})
	h.step(Shutdown{})
	h.step(PriorityChanged{Priority: 50})
	if h.m.State() != Initialize {
		t.Fatalf("state %s", h.m.State())
	}
}

func TestStartupTwiceIsIgnored(t *testing.T) {
	h := newHarness(t, nil)
	h.step(Startup{}, "remove 2 addresses", "initialize -> backup", "arm master-down-timer +"+down100)
	h.at(time.Second).step(Startup{})
}

// --- Backup (RFC 5798 6.4.2) ---

func backupHarness(t *testing.T, edit func(*Config)) *harness {
	h := newHarness(t, edit)
	h.m.Step(h.now, Startup{})
	return h
}

func TestBackupBecomesMasterWhenMasterDownTimerFires(t *testing.T) {
	h := backupHarness(t, nil)
	h.at(3609375*time.Microsecond).step(TimerExpired{Timer: MasterDownTimer},
		"send priority 100", "backup -> master", "add 2 addresses accept=false",
		"announce 2 addresses", "arm adver-timer +1s")
}

func TestBackupHigherPriorityAdvertPushesTakeoverBack(t *testing.T) {
	h := backupHarness(t, nil)
	h.at(2*time.Second).step(h.advert(higher, 150), "arm master-down-timer +"+down100)
	// The timer the caller armed at startup fires: too early now, re-arm.
	h.at(3609375*time.Microsecond).step(TimerExpired{Timer: MasterDownTimer}, "arm master-down-timer +2s")
	if s := h.m.Status(); s.Master != netip.MustParseAddr(higher) || s.MasterPriority != 150 {
		t.Fatalf("status %+v", s)
	}
}

func TestBackupEqualPriorityAdvertIsAcceptedWhateverTheAddress(t *testing.T) {
	h := backupHarness(t, nil)
	h.at(time.Second).step(h.advert(lower, 100), "arm master-down-timer +"+down100)
}

// A master shutting down sends priority 0: the backup takes over after
// Skew_Time, not after Master_Down_Interval.
func TestBackupPriorityZeroTakesOverAfterSkewTime(t *testing.T) {
	h := backupHarness(t, nil)
	h.at(time.Second).step(h.advert(higher, 150), "arm master-down-timer +"+down100)
	h.at(2*time.Second).step(h.advert(higher, 0), "arm master-down-timer +609.375ms")
	h.at(2*time.Second+609375*time.Microsecond).step(TimerExpired{Timer: MasterDownTimer},
		"send priority 100", "backup -> master", "add 2 addresses accept=false",
		"announce 2 addresses", "arm adver-timer +1s")
}

func TestBackupPreemptsLowerPriorityMaster(t *testing.T) {
	h := backupHarness(t, nil)
	h.at(time.Second).step(h.advert(lower, 50)) // discarded: timer keeps running
	h.at(2 * time.Second).step(h.advert(lower, 50))
	acts := h.at(3609375*time.Microsecond).step(TimerExpired{Timer: MasterDownTimer},
		"send priority 100", "backup -> master", "add 2 addresses accept=false",
		"announce 2 addresses", "arm adver-timer +1s")
	if r := acts[1].(StateChanged).Reason; !strings.Contains(r, "preempting 10.81.0.2") {
		t.Errorf("reason %q does not name the preempted master", r)
	}
}

func TestBackupNoPreemptKeepsLowerPriorityMaster(t *testing.T) {
	h := backupHarness(t, func(c *Config) { c.NoPreempt = true })
	h.at(time.Second).step(h.advert(lower, 50), "arm master-down-timer +"+down100)
	h.at(4*time.Second).step(h.advert(lower, 50), "arm master-down-timer +"+down100)
	h.at(4*time.Second+down100d()).step(TimerExpired{Timer: MasterDownTimer}, // only silence takes over
		"send priority 100", "backup -> master", "add 2 addresses accept=false",
		"announce 2 addresses", "arm adver-timer +1s")
}

func down100d() time.Duration { return 3609375 * time.Microsecond }

func TestBackupPreemptDelayAcceptsLowerMasterUntilDelayPasses(t *testing.T) {
	h := backupHarness(t, func(c *Config) { c.PreemptDelay = 10 * time.Second })
	// The first lower-priority advert starts the delay; until it passes
	// the lower master is accepted.
	h.at(time.Second).step(h.advert(lower, 50), "arm master-down-timer +"+down100)
	h.at(10*time.Second).step(h.advert(lower, 50), "arm master-down-timer +"+down100)
	// From 11 s on it is discarded, so the timer armed at 10 s runs out.
	h.at(11 * time.Second).step(h.advert(lower, 50))
	h.at(12 * time.Second).step(h.advert(lower, 50))
	h.at(10*time.Second+down100d()).step(TimerExpired{Timer: MasterDownTimer},
		"send priority 100", "backup -> master", "add 2 addresses accept=false",
		"announce 2 addresses", "arm adver-timer +1s")
}

func TestBackupPreemptDelayRestartsAfterHigherMaster(t *testing.T) {
	h := backupHarness(t, func(c *Config) { c.PreemptDelay = 10 * time.Second })
	h.at(time.Second).step(h.advert(lower, 50), "arm master-down-timer +"+down100)
	h.at(2*time.Second).step(h.advert(higher, 150), "arm master-down-timer +"+down100)
	// A higher master in between resets the delay: it starts again at 20 s.
	h.at(20*time.Second).step(h.advert(lower, 50), "arm master-down-timer +"+down100)
	h.at(29*time.Second).step(h.advert(lower, 50), "arm master-down-timer +"+down100)
	h.at(30 * time.Second).step(h.advert(lower, 50))
}

func TestBackupV3AdoptsMasterInterval(t *testing.T) {
	h := backupHarness(t, func(c *Config) { c.Version = Version3; c.AdvertInterval = 500 * time.Millisecond })
	adv := h.advert(higher, 150)
	adv.Advert.Interval = 2 * time.Second
	// 3 x 2 s + (156 x 2 s)/256 = 6 s + 1.21875 s.
	h.at(time.Second).step(adv, "arm master-down-timer +7.21875s")
	if s := h.m.Status(); s.MasterAdverInterval != 2*time.Second {
		t.Fatalf("master adver interval %s, want 2s", s.MasterAdverInterval)
	}
	// On becoming master it advertises at its own interval again.
	h.at(time.Second+7218750*time.Microsecond).step(TimerExpired{Timer: MasterDownTimer},
		"send priority 100", "backup -> master", "add 2 addresses accept=false",
		"announce 2 addresses", "arm adver-timer +500ms")
}

func TestBackupV2IntervalMismatchIsDiscarded(t *testing.T) {
	h := backupHarness(t, nil)
	adv := h.advert(higher, 150)
	adv.Advert.Interval = 2 * time.Second
	h.at(time.Second).step(adv, "discard ErrInterval")
}

func TestBackupShutdownSendsNothing(t *testing.T) {
	h := backupHarness(t, nil)
	h.at(time.Second).step(Shutdown{}, "stop master-down-timer", "backup -> initialize")
	h.at(5 * time.Second).step(TimerExpired{Timer: MasterDownTimer})
}

// --- Master (RFC 5798 6.4.3) ---

func masterHarness(t *testing.T, edit func(*Config)) *harness {
	h := newHarness(t, edit)
	h.m.Step(h.now, Startup{})
	h.at(time.Hour)
	h.m.Step(h.now, TimerExpired{Timer: MasterDownTimer})
	if h.m.State() != Master {
		t.Fatalf("setup: state %s", h.m.State())
	}
	return h
}

func TestMasterAdvertisesEveryInterval(t *testing.T) {
	h := masterHarness(t, nil)
	for i := 1; i <= 3; i++ {
		h.at(time.Hour+time.Duration(i)*time.Second).step(TimerExpired{Timer: AdverTimer},
			"send priority 100", "arm adver-timer +1s")
	}
}

func TestMasterShutdownSendsPriorityZeroAndDropsAddresses(t *testing.T) {
	h := masterHarness(t, nil)
	h.step(Shutdown{}, "stop adver-timer", "send priority 0", "remove 2 addresses", "master -> initialize")
	h.at(time.Hour + time.Second).step(TimerExpired{Timer: AdverTimer})
}

func TestMasterAnswersPriorityZeroAtOnce(t *testing.T) {
	h := masterHarness(t, nil)
	h.at(time.Hour+300*time.Millisecond).step(h.advert(lower, 0), "send priority 100", "arm adver-timer +1s")
}

func TestMasterYieldsToHigherPriority(t *testing.T) {
	h := masterHarness(t, nil)
	h.step(h.advert(lower, 150), // a lower address does not matter when the priority is higher
		"stop adver-timer", "send priority 100", "remove 2 addresses",
		"master -> backup", "arm master-down-timer +"+down100)
}

func TestMasterEqualPriorityTieBreakByAddress(t *testing.T) {
	h := masterHarness(t, nil)
	h.step(h.advert(lower, 100), "send priority 100", "announce 2 addresses", "arm adver-timer +1s")
	h.step(h.advert(higher, 100),
		"stop adver-timer", "send priority 100", "remove 2 addresses",
		"master -> backup", "arm master-down-timer +"+down100)
}

func TestMasterV3YieldAdoptsWinnerInterval(t *testing.T) {
	h := masterHarness(t, func(c *Config) { c.Version = Version3 })
	adv := h.advert(higher, 150)
	adv.Advert.Interval = 200 * time.Millisecond
	// 3 x 200 ms + 156 x 200 ms / 256.
	h.step(adv, "stop adver-timer", "send priority 100", "remove 2 addresses",
		"master -> backup", "arm master-down-timer +721.875ms")
}

// Keepalived issue #166: after two masters (a partition, a frozen VM) the
// winner must re-announce, because the loser's gratuitous ARPs moved the
// traffic to the loser, which is about to drop the addresses.
func TestMasterReannouncesWhenLowerPriorityMasterSeen(t *testing.T) {
	h := masterHarness(t, nil)
	acts := h.step(h.advert(lower, 50), "send priority 100", "announce 2 addresses", "arm adver-timer +1s")
	if r := acts[1].(Announce).Reason; !strings.Contains(r, "10.81.0.2") {
		t.Errorf("announce reason %q does not name the other master", r)
	}
}

// --- Fault ---

func TestFaultInMasterStepsDownWithPriorityZero(t *testing.T) {
	h := masterHarness(t, nil)
	h.step(FaultDetected{Reason: "interface eth0 down"},
		"stop adver-timer", "send priority 0", "remove 2 addresses", "master -> fault")
	h.step(h.advert(lower, 50))
	h.at(time.Hour + 5*time.Second).step(TimerExpired{Timer: AdverTimer})
	if s := h.m.Status(); s.Fault != "interface eth0 down" {
		t.Fatalf("fault %q", s.Fault)
	}
	h.step(FaultCleared{}, "fault -> backup", "arm master-down-timer +"+down100)
	h.step(FaultCleared{})
}

func TestFaultInBackup(t *testing.T) {
	h := backupHarness(t, nil)
	h.step(FaultDetected{Reason: "check web failed"}, "stop master-down-timer", "backup -> fault")
	h.step(FaultDetected{Reason: "still failing"})
	h.at(10 * time.Second).step(TimerExpired{Timer: MasterDownTimer})
	h.step(Shutdown{}, "fault -> initialize")
	// Still faulty: starting again goes straight to Fault.
	h.step(Startup{}, "initialize -> fault")
}

func TestFaultBeforeStartup(t *testing.T) {
	h := newHarness(t, nil)
	h.step(FaultDetected{Reason: "no link"})
	h.step(Startup{}, "initialize -> fault")
	h.step(FaultCleared{}, "fault -> backup", "arm master-down-timer +"+down100)
}

func TestFaultClearedOwnerBecomesMaster(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Priority = 255 })
	h.step(FaultDetected{Reason: "no link"})
	h.step(Startup{}, "initialize -> fault")
	h.step(FaultCleared{}, "send priority 255", "fault -> master", "add 2 addresses accept=true",
		"announce 2 addresses", "arm adver-timer +1s")
}

// --- Priority changes ---

func TestPriorityChangeInMasterIsAdvertisedAtOnce(t *testing.T) {
	h := masterHarness(t, nil)
	h.step(PriorityChanged{Priority: 80}, "send priority 80", "arm adver-timer +1s")
	h.step(PriorityChanged{Priority: 80})
	h.step(PriorityChanged{Priority: 0}, "send priority 1", "arm adver-timer +1s")
	h.step(PriorityChanged{Priority: 255}, "send priority 254", "arm adver-timer +1s")
}

func TestPriorityOfAddressOwnerIsFixed(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Priority = 255 })
	h.m.Step(h.now, Startup{})
	h.step(PriorityChanged{Priority: 10})
	if p := h.m.Status().Priority; p != 255 {
		t.Fatalf("priority %d", p)
	}
}

// A backup whose priority rises above the master's preempts it.
func TestPriorityRiseInBackupPreempts(t *testing.T) {
	h := backupHarness(t, func(c *Config) { c.Priority = 90 })
	h.at(time.Second).step(h.advert(higher, 100), "arm master-down-timer +3.6484375s")
	h.step(PriorityChanged{Priority: 120})
	h.at(2 * time.Second).step(h.advert(higher, 100)) // now lower: discarded
	h.at(time.Second+3648437500).step(TimerExpired{Timer: MasterDownTimer},
		"send priority 120", "backup -> master", "add 2 addresses accept=false",
		"announce 2 addresses", "arm adver-timer +1s")
}

// --- Receive checks (RFC 3768/5798 section 7.1) ---

func TestReceiveChecks(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		mod  func(*AdvertReceived)
		want []string
	}{
		{"other vrid", nil, func(a *AdvertReceived) { a.Advert.VRID = 52 }, []string{"discard ErrVRID"}},
		{"other version", nil, func(a *AdvertReceived) { a.Advert.Version = Version3 }, []string{"discard ErrBadVersion"}},
		{"own address", nil, func(a *AdvertReceived) { a.Src = netip.MustParseAddr(ours) }, []string{"discard ErrOwnAdvert"}},
		{"IPv6 source", nil, func(a *AdvertReceived) { a.Src = netip.MustParseAddr("fe80::9") }, []string{"discard ErrAddressFamily"}},
		{"zero interval", func(c *Config) { c.Version = Version3 }, func(a *AdvertReceived) { a.Advert.Interval = 0 }, []string{"discard ErrInterval"}},
		{"password expected", func(c *Config) { c.Password = "lvskit" }, func(a *AdvertReceived) { a.Advert.AuthType = AuthNone }, []string{"discard ErrAuth"}},
		{"wrong password", func(c *Config) { c.Password = "lvskit" }, func(a *AdvertReceived) { a.Advert.AuthData = password("lvskid") }, []string{"discard ErrAuth"}},
		{"unexpected password", nil, func(a *AdvertReceived) { a.Advert.AuthType = AuthSimple }, []string{"discard ErrAuth"}},
		{"right password", func(c *Config) { c.Password = "lvskit" }, func(a *AdvertReceived) {}, []string{"arm master-down-timer +" + down100}},
		{"addresses differ", nil, func(a *AdvertReceived) { a.Advert.Addresses = addrs("192.0.2.10", "192.0.2.99") },
			[]string{"misconfigured ErrAddressMismatch", "arm master-down-timer +" + down100}},
		{"addresses reordered", nil, func(a *AdvertReceived) { slices.Reverse(a.Advert.Addresses) }, []string{"arm master-down-timer +" + down100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := backupHarness(t, tt.edit)
			adv := h.advert(higher, 150)
			tt.mod(&adv)
			h.step(adv, tt.want...)
		})
	}
}

// --- StepDown (a failover drill) ---
