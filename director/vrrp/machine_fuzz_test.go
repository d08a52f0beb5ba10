package vrrp

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzMachine drives a Machine with arbitrary event sequences (each pair
// of bytes is an event and a time step) and checks what the caller relies
// on: it never panics, it holds the addresses exactly when it is master,
// and exactly the timer its state needs is armed.
func FuzzMachine(f *testing.F) {
	f.Add([]byte{0, 0, 3, 40, 2, 10, 1, 1})
	f.Add([]byte{0, 0, 2, 0, 4, 200, 5, 1, 6, 0, 2, 100, 1, 1})
	f.Add([]byte{5, 0, 0, 0, 6, 0, 3, 255, 2, 200})
	f.Fuzz(func(t *testing.T, script []byte) {
		cfg := baseConfig()
		cfg.Version = Version3
		if len(script) > 0 && script[0]&0x80 != 0 {
			cfg.Priority = 255
		}
		m, err := NewMachine(cfg)
		if err != nil {
			t.Fatal(err)
		}
		peers := []netip.Addr{netip.MustParseAddr(lower), netip.MustParseAddr(higher)}
		now := t0
		holds := false
		timers := map[Timer]time.Time{}
		for i := 0; i+1 < len(script); i += 2 {
			op, arg := script[i], script[i+1]
			now = now.Add(time.Duration(arg) * 50 * time.Millisecond)
			var ev Event
			switch op % 8 {
			case 0:
				ev = Startup{}
			case 1:
				ev = Shutdown{}
			case 2:
				ev = AdvertReceived{Src: peers[arg%2], Advert: Advertisement{Version: Version3, VRID: cfg.VRID,
					Priority: arg, Interval: time.Duration(arg%8+1) * 100 * time.Millisecond, Addresses: cfg.Addresses}}
			case 3:
				ev = TimerExpired{Timer: AdverTimer}
			case 4:
				ev = TimerExpired{Timer: MasterDownTimer}
			case 5:
				ev = FaultDetected{Reason: "fuzz"}
			case 6:
				ev = FaultCleared{}
			case 7:
				ev = PriorityChanged{Priority: arg}
			}
			if te, ok := ev.(TimerExpired); ok {
				if at, armed := timers[te.Timer]; armed && !now.Before(at) {
					delete(timers, te.Timer) // it fired at the caller
				}
			}
			for _, a := range m.Step(now, ev) {
				switch a := a.(type) {
				case AddAddresses:
					holds = true
				case RemoveAddresses:
					holds = false
				case ArmTimer:
					if a.At.Before(now) {
						t.Fatalf("step %d: timer %s armed in the past", i/2, a.Timer)
					}
					timers[a.Timer] = a.At
				case StopTimer:
					delete(timers, a.Timer)
				}
			}
			state := m.State()
			if holds != (state == Master) {
				t.Fatalf("step %d (%T): state %s but holds addresses %v", i/2, ev, state, holds)
			}
			_, adver := timers[AdverTimer]
			_, down := timers[MasterDownTimer]
			if adver != (state == Master) || down != (state == Backup) {
				t.Fatalf("step %d (%T): state %s with timers %v", i/2, ev, state, timers)
			}
			for tm, at := range timers {
				if !m.deadline(tm).Equal(at) {
					t.Fatalf("step %d (%T): caller's %s at %s, machine's at %s", i/2, ev, tm, at, m.deadline(tm))
				}
			}
		}
	})
}

// deadline is the machine's own view of an armed timer.
func (m *Machine) deadline(t Timer) time.Time {
	if t == AdverTimer {
		return m.adverAt
	}
	return m.downAt
}
