//go:build !unix

package reconcile

import (
	"errors"
	"io/fs"
	"os"
)

// openNoFollow opens a file refusing a symlink as its last element.
func openNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errors.New("is a symlink")}
	}
	return os.OpenFile(path, flag, perm)
}
