//go:build nobgp

package bgp

import "errors"

// ErrNotBuilt is returned by NewGoBGP in a build without BGP.
var ErrNotBuilt = errors.New("this lvsd was built without BGP (the nobgp build tag): use a build without -tags nobgp, or remove the config's bgp section")

// GoBGP is absent from a build with the nobgp tag: NewGoBGP fails.
type GoBGP struct{ Speaker }

// NewGoBGP fails with ErrNotBuilt: the binary was built without GoBGP.
func NewGoBGP(cfg Config, opts Options) (*GoBGP, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	return nil, ErrNotBuilt
}
