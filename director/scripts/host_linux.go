package scripts

import (
	"io"
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

func (osHost) ReadHead(path string, n int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return b[:k], err
}
