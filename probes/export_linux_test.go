//go:build linux && amd64

package probes

// SetAttachParallel sets how many targets attach or detach at once, for
// benchmarks comparing it; it returns the previous value.
func SetAttachParallel(n int) int {
	old := attachParallel
	attachParallel = n
	return old
}
