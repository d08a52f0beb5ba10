package scripts

import (
	"io/fs"
	"os"
	"syscall"
)

func (osHost) Lstat(path string) (FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return FileInfo{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileInfo{}, &fs.PathError{Op: "lstat", Path: path, Err: syscall.ENOTSUP}
	}
	return FileInfo{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid}, nil
}

func (osHost) Readlink(path string) (string, error) { return os.Readlink(path) }

func (osHost) Euid() uint32 { return uint32(os.Geteuid()) }
