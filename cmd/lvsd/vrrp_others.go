//go:build !linux

package main

import "github.com/lvskit/lvskit/director"

// vrrpOptions is empty off Linux: a config with VRRP instances fails to
// start with director.ErrNoVRRP.
func vrrpOptions() director.VRRPOptions { return director.VRRPOptions{} }
