package vrrp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// --- Reconfigured: a reload in place, as keepalived keeps state ---

func reloaded(edit func(*Config)) Reconfigured {
	cfg := baseConfig()
	edit(&cfg)
	return Reconfigured{Config: cfg}
}

func TestReloadedMasterWithSameSettingsStaysMasterAndAdvertisesOnce(t *testing.T) {
	h := masterHarness(t, nil)
	h.at(time.Hour+300*time.Millisecond).step(reloaded(func(*Config) {}),
		"send priority 100", "arm adver-timer +1s")
	if s := h.m.Status(); s.State != Master || s.Priority != 100 {
		t.Fatalf("status %+v", s)
	}
}

// Lowering a master's priority is how keepalived users drain it: it stays
// master, tells the backups at once, and a higher backup preempts.
func TestReloadedMasterLowerPriorityAdvertisesItAndYieldsToAHigherBackup(t *testing.T) {
	h := masterHarness(t, nil)
	h.at(time.Hour+300*time.Millisecond).step(reloaded(func(c *Config) { c.Priority = 50 }),
		"send priority 50", "arm adver-timer +1s")
	h.at(time.Hour+time.Second).step(h.advert(lower, 90),
		"stop adver-timer", "send priority 50", "remove 2 addresses",
		"master -> backup", "arm master-down-timer +3.8046875s")
}

func TestReloadedMasterAddsAndAnnouncesNewAddressesKeepsTheOthers(t *testing.T) {
	h := masterHarness(t, nil)
	acts := h.at(time.Hour+time.Second/2).step(reloaded(func(c *Config) { c.Addresses = addrs("192.0.2.10", "192.0.2.11", "192.0.2.12") }),
		"add 1 addresses accept=false", "announce 3 addresses", "send priority 100", "arm adver-timer +1s")
	if add := acts[0].(AddAddresses); !slices.Equal(add.Addresses, addrs("192.0.2.12")) {
		t.Errorf("added %v, want only the new address", add.Addresses)
	}
	if a := acts[2].(SendAdvert).Advert; len(a.Addresses) != 3 {
		t.Errorf("advert lists %v, want the three addresses", a.Addresses)
	}
}

func TestReloadedMasterRemovesOnlyTheDroppedAddressesWithoutAnnouncing(t *testing.T) {
	h := masterHarness(t, nil)
	acts := h.at(time.Hour+time.Second/2).step(reloaded(func(c *Config) { c.Addresses = addrs("192.0.2.11") }),
		"remove 1 addresses", "send priority 100", "arm adver-timer +1s")
	if rm := acts[0].(RemoveAddresses); !rm.Partial || !slices.Equal(rm.Addresses, addrs("192.0.2.10")) {
		t.Errorf("removal %+v, want 192.0.2.10 alone, partial", rm)
	}
}

func TestReloadedMasterAdvertisesAtTheNewInterval(t *testing.T) {
	h := masterHarness(t, nil)
	h.at(time.Hour+time.Second/2).step(reloaded(func(c *Config) { c.AdvertInterval = 3 * time.Second }),
		"send priority 100", "arm adver-timer +3s")
	// The timer armed at the old interval is stale now.
	h.at(time.Hour+time.Second).step(TimerExpired{Timer: AdverTimer}, "arm adver-timer +2.5s")
}

// Tracking moves the effective priority away from the configured one: the
// reload carries it.
func TestReloadedMasterRunsAtTheEffectivePriorityGiven(t *testing.T) {
	h := masterHarness(t, nil)
	ev := reloaded(func(c *Config) { c.Priority = 120 })
	ev.Priority = 140
	h.at(time.Hour+time.Second/2).step(ev, "send priority 140", "arm adver-timer +1s")
	if s := h.m.Status(); s.Priority != 140 {
		t.Fatalf("priority %d, want 140", s.Priority)
	}
}

// keepalived's reload_master: an address owner that a reload lowers
// stays master until a higher peer preempts.
func TestReloadedOwnerLosingPriority255StaysMaster(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Priority = 255 })
	h.m.Step(h.now, Startup{})
	h.at(time.Second/2).step(reloaded(func(c *Config) { c.Priority = 100 }),
		"send priority 100", "arm adver-timer +1s")
	if h.m.State() != Master {
		t.Fatalf("state %s", h.m.State())
	}
}

func TestReloadedBackupStaysBackupAndWaitsAFullDownIntervalOfTheNewSettings(t *testing.T) {
	h := backupHarness(t, nil)
	h.at(time.Second).step(h.advert(higher, 150), "arm master-down-timer +"+down100)
	// Priority 200: Skew_Time 56/256 s.
	h.at(2*time.Second).step(reloaded(func(c *Config) { c.Priority = 200 }), "arm master-down-timer +3.21875s")
	if s := h.m.Status(); s.State != Backup || s.Master != netip.MustParseAddr(higher) || s.MasterPriority != 150 {
		t.Fatalf("status %+v: the backup forgot its master", s)
	}
	// The master's adverts go on being accepted; without them it takes over.
	h.at(5*time.Second+218750*time.Microsecond).step(TimerExpired{Timer: MasterDownTimer},
		"send priority 200", "backup -> master", "add 2 addresses accept=false", "announce 2 addresses", "arm adver-timer +1s")
}

func TestReloadedVersion3BackupKeepsTheMastersInterval(t *testing.T) {
	h := backupHarness(t, func(c *Config) { c.Version = Version3 })
	a := h.advert(higher, 150)
	a.Advert.Interval = 2 * time.Second
	h.at(time.Second).step(a, "arm master-down-timer +7.21875s")
	h.at(2*time.Second).step(reloaded(func(c *Config) { c.Version = Version3; c.Priority = 120 }),
		"arm master-down-timer +7.0625s")
	if s := h.m.Status(); s.MasterAdverInterval != 2*time.Second {
		t.Fatalf("master advert interval %s, want the master's 2s", s.MasterAdverInterval)
	}
}

func TestReloadedBackupMadeAddressOwnerTakesOverAtOnce(t *testing.T) {
	h := backupHarness(t, nil)
	h.at(time.Second).step(reloaded(func(c *Config) { c.Priority = 255 }),
		"stop master-down-timer", "send priority 255", "backup -> master", "add 2 addresses accept=true",
		"announce 2 addresses", "arm adver-timer +1s")
}

func TestReloadedInFaultOnlyTakesTheSettings(t *testing.T) {
	h := backupHarness(t, nil)
	h.at(time.Second).step(FaultDetected{Reason: "link down"}, "stop master-down-timer", "backup -> fault")
	h.at(2 * time.Second).step(reloaded(func(c *Config) { c.Priority = 200; c.Addresses = addrs("192.0.2.12") }))
	h.at(3*time.Second).step(FaultCleared{}, "fault -> backup", "arm master-down-timer +3.21875s")
	if s := h.m.Status(); s.Priority != 200 {
		t.Fatalf("priority %d after the fault, want the reloaded 200", s.Priority)
	}
}

func TestReloadedWithAnotherVRIDOrFamilyOrAnInvalidConfigIsIgnored(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"vrid": func(c *Config) { c.VRID = 52 },
		"family": func(c *Config) {
			c.Version = Version3
			c.PrimaryAddress = netip.MustParseAddr("fe80::1")
			c.Addresses = addrs("2001:db8::1")
		},
		"invalid": func(c *Config) { c.Addresses = nil },
	} {
		t.Run(name, func(t *testing.T) {
			h := masterHarness(t, nil)
			h.at(time.Hour + time.Second/2).step(reloaded(edit))
			if h.m.cfg.VRID != 51 || len(h.m.cfg.Addresses) != 2 || h.m.State() != Master {
				t.Fatalf("config %+v, state %s: changed by an ignored reload", h.m.cfg, h.m.State())
			}
		})
	}
}
