//go:build linux || darwin

package ipvs

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of f for reading.
func mapFile(f *os.File, size int64) ([]byte, func(), bool) {
	if int64(int(size)) != size {
		return nil, nil, false
	}
	conn, err := f.SyscallConn()
	if err != nil {
		return nil, nil, false
	}
	var data []byte
	ctlErr := conn.Control(func(fd uintptr) {
		data, err = syscall.Mmap(int(fd), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	})
	if ctlErr != nil || err != nil {
		return nil, nil, false
	}
	return data, func() { syscall.Munmap(data) }, true
}
