//go:build !linux

package scripts

import (
	"fmt"
	"runtime"
)

// CloseInheritedOnExec is not implemented outside Linux.
func CloseInheritedOnExec() error {
	return fmt.Errorf("marking inherited files close-on-exec: not implemented on %s/%s", runtime.GOOS, runtime.GOARCH)
}
