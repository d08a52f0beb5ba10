package vrrp

// The machine's timing (skew, Master_Down_Interval), what its adverts carry,
// the config it refuses, faults and step-downs.

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// A stale or foreign timer report never causes a transition.
func TestTimerReportsThatDoNotMatchAreIgnored(t *testing.T) {
	h := backupHarness(t, nil)
	h.at(time.Second).step(TimerExpired{Timer: AdverTimer})
	h.step(TimerExpired{Timer: MasterDownTimer}, "arm master-down-timer +2.609375s")
	h.step(TimerExpired{Timer: 9})
	h.step(nil)
}

func TestSkewAndMasterDownInterval(t *testing.T) {
	tests := []struct {
		version  Version
		interval time.Duration
		priority uint8
		skew     time.Duration
		down     time.Duration
	}{
		{Version2, time.Second, 100, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{Version2, 3 * time.Second, 100, 609375 * time.Microsecond, 9609375 * time.Microsecond}, // v2 skew ignores the interval
		{Version2, time.Second, 255, 3906250, 3003906250},
		{Version2, time.Second, 1, 996093750, 3996093750},
		{Version3, time.Second, 100, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{Version3, 500 * time.Millisecond, 200, 109375 * time.Microsecond, 1609375 * time.Microsecond},
		{Version3, 10 * time.Millisecond, 254, 78125, 30078125},
	}
	for _, tt := range tests {
		cfg := baseConfig()
		cfg.Version, cfg.AdvertInterval, cfg.Priority = tt.version, tt.interval, tt.priority
		m, err := NewMachine(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.SkewTime(); got != tt.skew {
			t.Errorf("v%d %s priority %d: skew %s, want %s", tt.version, tt.interval, tt.priority, got, tt.skew)
		}
		if got := m.MasterDownInterval(); got != tt.down {
			t.Errorf("v%d %s priority %d: down interval %s, want %s", tt.version, tt.interval, tt.priority, got, tt.down)
		}
	}
}

// Adjacent priorities never get the same skew, whatever the interval.
func TestSkewSeparatesAdjacentPriorities(t *testing.T) {
	for _, interval := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, time.Second} {
		var prev time.Duration = -1
		for p := 255; p >= 1; p-- {
			cfg := baseConfig()
			cfg.Version, cfg.AdvertInterval, cfg.Priority = Version3, interval, uint8(p)
			m, _ := NewMachine(cfg)
			if s := m.SkewTime(); s <= prev {
				t.Fatalf("interval %s: priority %d skew %s not above priority %d's %s", interval, p, s, p+1, prev)
			} else {
				prev = s
			}
		}
	}
}

func TestAdvertsCarryConfiguration(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Priority = 255; c.Password = "lvskit" })
	acts := h.m.Step(h.now, Startup{})
	got := acts[0].(SendAdvert).Advert
	want := Advertisement{Version: Version2, VRID: 51, Priority: 255, Interval: time.Second,
		Addresses: addrs("192.0.2.10", "192.0.2.11"), AuthType: AuthSimple, AuthData: password("lvskit")}
	if !equalAdvert(got, want) {
		t.Fatalf("advert %+v, want %+v", got, want)
	}
	// Callers may keep and modify what they get.
	got.Addresses[0] = netip.MustParseAddr("192.0.2.99")
	if again := h.m.Step(h.now.Add(time.Second), TimerExpired{Timer: AdverTimer})[0].(SendAdvert); again.Advert.Addresses[0] != netip.MustParseAddr("192.0.2.10") {
		t.Fatal("advert shares its address slice with the machine")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring; empty: valid
	}{
		{"base", func(c *Config) {}, ""},
		{"v3 IPv6", func(c *Config) {
			c.Version = Version3
			c.PrimaryAddress = netip.MustParseAddr("fe80::1%eth0")
			c.Addresses = addrs("fe80::54:1", "2001:db8::40")
		}, ""},
		{"vrid 0", func(c *Config) { c.VRID = 0 }, "virtual router id 0"},
		{"version 4", func(c *Config) { c.Version = 4 }, "version 4"},
		{"priority 0", func(c *Config) { c.Priority = 0 }, "priority 0"},
		{"no interval", func(c *Config) { c.AdvertInterval = 0 }, "must be positive"},
		{"v2 fractional interval", func(c *Config) { c.AdvertInterval = 1500 * time.Millisecond }, "whole seconds"},
		{"v3 interval too long", func(c *Config) { c.Version = Version3; c.AdvertInterval = time.Minute }, "centiseconds"},
		{"no primary", func(c *Config) { c.PrimaryAddress = netip.Addr{} }, "primary address"},
		{"v2 IPv6", func(c *Config) {
			c.PrimaryAddress = netip.MustParseAddr("fe80::1")
			c.Addresses = addrs("2001:db8::40")
		}, "IPv4 only"},
		{"IPv6 global primary", func(c *Config) {
			c.Version = Version3
			c.PrimaryAddress = netip.MustParseAddr("2001:db8::1")
			c.Addresses = addrs("2001:db8::40")
		}, "link-local"},
		{"no VIPs", func(c *Config) { c.Addresses = nil }, "no virtual addresses"},
		{"mixed VIPs", func(c *Config) { c.Addresses = addrs("192.0.2.1", "2001:db8::1") }, "family"},
		{"duplicate VIP", func(c *Config) { c.Addresses = addrs("192.0.2.1", "192.0.2.1") }, "twice"},
		{"owner nopreempt", func(c *Config) { c.Priority = 255; c.NoPreempt = true }, "always preempts"},
		{"delay nopreempt", func(c *Config) { c.NoPreempt = true; c.PreemptDelay = time.Second }, "nothing to delay"},
		{"negative delay", func(c *Config) { c.PreemptDelay = -time.Second }, "negative"},
		{"long password", func(c *Config) { c.Password = "123456789" }, "at most 8"},
		{"v3 password", func(c *Config) { c.Version = Version3; c.Password = "x" }, "no authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			case err != nil && !strings.HasPrefix(err.Error(), "vrrp vrid "):
				t.Fatalf("error %q does not name the virtual router", err)
			}
		})
	}
}

func TestFaultClearedBeforeStartupStartsNormally(t *testing.T) {
	h := newHarness(t, nil)
	h.step(FaultDetected{Reason: "no link"})
	h.step(FaultCleared{})
	h.step(Startup{}, "remove 2 addresses", "initialize -> backup", "arm master-down-timer +"+down100)
}

// A master asked to step down tells the backups with priority 0 (they
// take over after Skew_Time), drops the addresses and waits as a backup,
// with its lowered priority; it takes the addresses back only if no
// master advertises.
func TestMasterStepDownSendsPriorityZeroAndWaitsAsBackup(t *testing.T) {
	h := masterHarness(t, nil)
	h.step(PriorityChanged{Priority: 1}, "send priority 1", "arm adver-timer +1s")
	// Priority 1, version 2, 1 s: 3 s + 255/256 s.
	h.step(StepDown{Reason: "drill"},
		"stop adver-timer", "send priority 0", "remove 2 addresses",
		"master -> backup", "arm master-down-timer +3.99609375s")
	// The peer that took over advertises: the stepped-down router stays
	// a backup although preempt is on (its priority is lower).
	h.at(time.Hour+time.Second).step(h.advert(lower, 100), "arm master-down-timer +3.99609375s")
	if s := h.m.State(); s != Backup {
		t.Fatalf("state %s after the new master's advert", s)
	}
	// The drill ends: its priority comes back, and it preempts the lower
	// master by letting the timer run out.
	h.step(PriorityChanged{Priority: 150})
	h.at(time.Hour + 2*time.Second).step(h.advert(lower, 100))
	h.at(time.Hour+2*time.Second+3609375*time.Microsecond).step(TimerExpired{Timer: MasterDownTimer},
		"send priority 150", "backup -> master", "add 2 addresses accept=false", "announce 2 addresses", "arm adver-timer +1s")
}

func TestStepDownOutsideMasterDoesNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.step(StepDown{Reason: "drill"})
	h.step(Startup{}, "remove 2 addresses", "initialize -> backup", "arm master-down-timer +"+down100)
	h.step(StepDown{Reason: "drill"})
	if s := h.m.State(); s != Backup {
		t.Fatalf("state %s", s)
	}
}
