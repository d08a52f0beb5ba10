//go:build !linux

package scripts

import (
	"fmt"
	"runtime"
)

var errNotLinux = fmt.Errorf("checking who owns a script: not implemented on %s/%s", runtime.GOOS, runtime.GOARCH)

func (osHost) Lstat(path string) (FileInfo, error) {
	return FileInfo{}, fmt.Errorf("%s: %w", path, errNotLinux)
}

func (osHost) Readlink(path string) (string, error) {
	return "", fmt.Errorf("%s: %w", path, errNotLinux)
}

func (osHost) Euid() uint32 { return 0 }

func (osHost) ReadHead(path string, _ int) ([]byte, error) {
	return nil, fmt.Errorf("%s: %w", path, errNotLinux)
}
