// Package scriptstest is a fake scripts.Host: a filesystem of paths with
// owners and modes, and a user database, held in maps. It counts the
// lookups, so that tests can tell when the filesystem was read.
package scriptstest

import (
	"fmt"
	"io/fs"
	"path"
	"sync"

	"github.com/lvskit/lvskit/director/scripts"
)

var _ scripts.Host = (*Host)(nil)

// Host is a fake system. The zero value is not usable: call New.
type Host struct {
	mu     sync.Mutex
	files  map[string]scripts.FileInfo
	links  map[string]string
	heads  map[string][]byte
	users  map[string]scripts.Account
	groups map[string]uint32
	euid   uint32
	lstats int
}

// New returns a system with a root-owned / (mode 0755), the users root
// (0) and nobody (65534), and the groups root (0) and nogroup (65534);
// lvsd runs as root.
func New() *Host {
	h := &Host{
		files:  map[string]scripts.FileInfo{"/": {Mode: fs.ModeDir | 0o755}},
		links:  map[string]string{},
		heads:  map[string][]byte{},
		users:  map[string]scripts.Account{},
		groups: map[string]uint32{},
	}
	h.AddGroup("root", 0)
	h.AddGroup("nogroup", 65534)
	h.AddUser(scripts.Account{Name: "root", Groups: []uint32{0}})
	h.AddUser(scripts.Account{Name: "nobody", UID: 65534, GID: 65534, Groups: []uint32{65534}})
	return h
}

// Dir adds a directory (and root-owned 0755 parents that are missing).
func (h *Host) Dir(p string, mode fs.FileMode, uid, gid uint32) *Host {
	return h.add(p, scripts.FileInfo{Mode: fs.ModeDir | mode, UID: uid, GID: gid})
}

// File adds a regular file (and root-owned 0755 parents that are
// missing). mode may carry fs.ModeSetuid and the like.
func (h *Host) File(p string, mode fs.FileMode, uid, gid uint32) *Host {
	return h.add(p, scripts.FileInfo{Mode: mode, UID: uid, GID: gid})
}

// Script adds a regular file whose content starts with head (a #!
// line).
func (h *Host) Script(p string, mode fs.FileMode, uid, gid uint32, head string) *Host {
	h.File(p, mode, uid, gid)
	h.mu.Lock()
	h.heads[path.Clean(p)] = []byte(head)
	h.mu.Unlock()
	return h
}

// Link adds a symbolic link to target, owned by root.
func (h *Host) Link(p, target string) *Host {
	h.add(p, scripts.FileInfo{Mode: fs.ModeSymlink | 0o777})
	h.mu.Lock()
	h.links[p] = target
	h.mu.Unlock()
	return h
}

func (h *Host) add(p string, fi scripts.FileInfo) *Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	p = path.Clean(p)
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if _, ok := h.files[d]; !ok {
			h.files[d] = scripts.FileInfo{Mode: fs.ModeDir | 0o755}
		}
	}
	h.files[p] = fi
	return h
}

// AddUser adds an account.
func (h *Host) AddUser(a scripts.Account) *Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users[a.Name] = a
	return h
}

// AddGroup adds a group.
func (h *Host) AddGroup(name string, gid uint32) *Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.groups[name] = gid
	return h
}

// SetEuid sets the user lvsd runs as.
func (h *Host) SetEuid(uid uint32) *Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.euid = uid
	return h
}

// Lstats is how many times Lstat was called.
func (h *Host) Lstats() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lstats
}

// Lstat implements scripts.Host.
func (h *Host) Lstat(p string) (scripts.FileInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lstats++
	fi, ok := h.files[path.Clean(p)]
	if !ok {
		return scripts.FileInfo{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return fi, nil
}

// Readlink implements scripts.Host.
func (h *Host) Readlink(p string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.links[path.Clean(p)]
	if !ok {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: fs.ErrInvalid}
	}
	return t, nil
}

// LookupUser implements scripts.Host.
func (h *Host) LookupUser(name string) (scripts.Account, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.users[name]
	if !ok {
		return scripts.Account{}, fmt.Errorf("user %s: %w", name, scripts.ErrUnknown)
	}
	return a, nil
}

// LookupGroup implements scripts.Host.
func (h *Host) LookupGroup(name string) (uint32, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g, ok := h.groups[name]
	if !ok {
		return 0, fmt.Errorf("group %s: %w", name, scripts.ErrUnknown)
	}
	return g, nil
}

// UserName implements scripts.Host.
func (h *Host) UserName(uid uint32) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.users {
		if a.UID == uid {
			return a.Name
		}
	}
	return ""
}

// GroupName implements scripts.Host.
func (h *Host) GroupName(gid uint32) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for n, g := range h.groups {
		if g == gid {
			return n
		}
	}
	return ""
}

// ReadHead implements scripts.Host: the head a Script was given, empty
// for other files.
func (h *Host) ReadHead(p string, n int) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fi, ok := h.files[path.Clean(p)]
	if !ok || !fi.Mode.IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	b := h.heads[path.Clean(p)]
	return b[:min(n, len(b))], nil
}

// Euid implements scripts.Host.
func (h *Host) Euid() uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.euid
}
