//go:build vmtest && linux

package director_test

import "testing"

// TestVMVRRPFailover runs the VRRP failover of two lvsd binaries in the
// kernel VM, where IPVS is there for lvsd to program.
func TestVMVRRPFailover(t *testing.T) { testVRRPFailover(t) }
