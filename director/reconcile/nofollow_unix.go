//go:build unix

package reconcile

import (
	"os"
	"syscall"
)

// openNoFollow opens a file refusing a symlink as its last element.
func openNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
}
