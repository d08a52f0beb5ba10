//go:build linux || darwin

package ipvs

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
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

// releasePages lets go of the pages wholly within b, a part of a mapping
// made by mapFile, which has been read: they stay in the page cache, and
// do not count in the process's resident memory.
func releasePages(b []byte) {
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := (start + page - 1) &^ (page - 1)
	hi := (start + uintptr(len(b))) &^ (page - 1)
	if hi > lo {
		unix.Madvise(b[lo-start:hi-start], unix.MADV_DONTNEED)
	}
}
