//go:build nobgp

package bgp

import (
	"errors"
	"net/netip"
	"testing"
)

func TestNoBGPBuildRefusesToStartASpeaker(t *testing.T) {
	cfg := Config{ASN: 65001, RouterID: netip.MustParseAddr("10.0.0.2"), Peers: []PeerConfig{{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000}}}
	if _, err := NewGoBGP(cfg, Options{}); !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("NewGoBGP in a nobgp build = %v, want ErrNotBuilt", err)
	}
}
