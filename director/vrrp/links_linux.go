package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkUp reports whether a link can carry traffic: administratively up
// and with its operational state up (or unknown, as for dummy and
// loopback links, which have no carrier to lose), and why not.
func LinkUp(attrs *netlink.LinkAttrs) (bool, string) {
	switch {
	case attrs.Flags&net.FlagUp == 0:
		return false, "link set down"
	case attrs.OperState != netlink.OperUp && attrs.OperState != netlink.OperUnknown:
		return false, "operational state " + attrs.OperState.String()
	}
	return true, "link up"
}

// WatchLinks reports the state of the named links through changed until
// ctx ends: each link's current state first (a link that does not exist
// is down), then every change, from rtnetlink's link notifications. It
// returns nil when ctx ends.
func WatchLinks(ctx context.Context, names []string, changed func(name string, up bool, reason string)) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	errs := make(chan error, 1)
	// Subscribe before reading the current states, so no change falls
	// between the two.
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case errs <- err:
			default:
			}
		},
	}); err != nil {
		return fmt.Errorf("watching links: %w", err)
	}
	last := map[string]bool{}
	report := func(name string, up bool, reason string) {
		if prev, seen := last[name]; seen && prev == up {
			return
		}
		last[name] = up
		changed(name, up, reason)
	}
	for _, n := range names {
		l, err := netlink.LinkByName(n)
		var nf netlink.LinkNotFoundError
		switch {
		case errors.As(err, &nf):
			report(n, false, "no such link")
		case err != nil:
			return fmt.Errorf("reading link %s: %w", n, err)
		default:
			up, why := LinkUp(l.Attrs())
			report(n, up, why)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return fmt.Errorf("watching links: %w", err)
		case u, ok := <-updates:
			if !ok {
				return errors.New("watching links: the netlink subscription ended")
			}
			a := u.Attrs()
			if a == nil || !want[a.Name] {
				continue
			}
			if u.Header.Type == unix.RTM_DELLINK {
				report(a.Name, false, "link deleted")
				continue
			}
			up, why := LinkUp(a)
			report(a.Name, up, why)
		}
	}
}
