package scripts

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// SafePath is the PATH every program lvsd runs gets, and where a command
// without a slash is looked up: lvsd's own PATH is not used.
const SafePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxLinks bounds the symbolic links one walk follows, as the kernel's
// ELOOP does.
const maxLinks = 40

// FileInfo is what the checks need to know about one path component.
type FileInfo struct {
	// Mode holds the type (fs.ModeDir, fs.ModeSymlink, ...), the
	// permission bits and fs.ModeSticky, fs.ModeSetuid, fs.ModeSetgid.
	Mode fs.FileMode
	// UID and GID own the file.
	UID, GID uint32
}

// Account is a user lvsd can run programs as.
type Account struct {
	// Name is the login name.
	Name string
	// UID and GID are the user's ID and primary group.
	UID, GID uint32
	// Groups are the supplementary groups, the primary one included.
	Groups []uint32
}

// Host is what the checks read from the system.
type Host interface {
	// Lstat describes path without following it if it is a symbolic
	// link.
	Lstat(path string) (FileInfo, error)
	// Readlink returns the target of the symbolic link at path.
	Readlink(path string) (string, error)
	// LookupUser finds an account by login name; the error wraps
	// ErrUnknown when there is none.
	LookupUser(name string) (Account, error)
	// LookupGroup finds a group's ID by name; the error wraps ErrUnknown
	// when there is none.
	LookupGroup(name string) (uint32, error)
	// UserName and GroupName name an ID for messages; "" when unknown.
	UserName(uid uint32) string
	GroupName(gid uint32) string
	// Euid is the user ID lvsd runs as.
	Euid() uint32
	// ReadHead returns up to n bytes from the start of the regular file
	// at path (for a script's #! line).
	ReadHead(path string, n int) ([]byte, error)
}

// ErrUnknown is wrapped by Host lookups of a user or group that does
// not exist.
var ErrUnknown = errors.New("no such user or group")

// ErrNotFound is wrapped by Verify and LookPath when there is no program
// to run at the path.
var ErrNotFound = errors.New("not found")

// InsecureError says why a program is not safe to run: a component of
// its path (the program itself, a directory above it, or anything on the
// way through its symbolic links) can be changed by someone other than
// root.
type InsecureError struct {
	// Path is the program as given.
	Path string
	// Links are the symbolic links followed before the component at
	// fault, each as "link -> target".
	Links []string
	// Component is the path at fault.
	Component string
	// Reason says who can change it: "is writable by every user (mode
	// 0777)".
	Reason string
	// Fix says what to do about it.
	Fix string
}

func (e *InsecureError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if len(e.Links) > 0 {
		fmt.Fprintf(&b, " (through %s)", strings.Join(e.Links, ", "))
	}
	if e.Component == e.Path {
		fmt.Fprintf(&b, " %s: %s", e.Reason, e.Fix)
	} else {
		fmt.Fprintf(&b, ": %s %s: %s", e.Component, e.Reason, e.Fix)
	}
	return b.String()
}

// Verify resolves the absolute path name component by component,
// following symbolic links as the kernel would, and returns the real
// path of the program: a regular, executable file. It returns an
// *InsecureError when anything on the way could be changed by a user
// other than root or lvsd's own user (with the real path, for a caller
// that accepts the risk), and an error wrapping ErrNotFound when the file
// does not exist.
//
// A script's interpreter (its #! line; for #!/usr/bin/env NAME, also
// NAME as found in SafePath) is verified the same way: whoever can change
// the interpreter changes what the script does.
func Verify(h Host, name string) (string, error) {
	return verify(h, name, 0)
}

// maxInterpreters bounds nested #! interpreters, as the kernel does.
const maxInterpreters = 4

func verify(h Host, name string, depth int) (string, error) {
	if !path.IsAbs(name) {
		return "", fmt.Errorf("%s is not an absolute path: write the full path, such as /usr/local/bin/%s", name, path.Base(name))
	}
	w := walker{h: h, name: name, trusted: h.Euid()}
	real, err := w.walk()
	if err != nil {
		return "", err
	}
	if w.problem != nil {
		return real, w.problem
	}
	for _, interp := range interpreters(h, real) {
		if depth >= maxInterpreters {
			return "", fmt.Errorf("%s: more than %d nested #! interpreters", name, maxInterpreters)
		}
		var err error
		if strings.Contains(interp, "/") {
			_, err = verify(h, interp, depth+1)
		} else {
			_, err = LookPath(h, interp, SafePath)
		}
		var ie *InsecureError
		switch {
		case errors.As(err, &ie):
			ie.Links = append(append(append([]string(nil), w.links...), fmt.Sprintf("%s runs %s (#!)", real, ie.Path)), ie.Links...)
			ie.Path = name
			return real, ie
		case err != nil:
			return "", fmt.Errorf("%s: its interpreter (#!): %w", name, err)
		}
	}
	return real, nil
}

// interpreters are the programs a script's #! line runs: the
// interpreter, and for /usr/bin/env the program env looks up. None for
// a binary, or a file that cannot be read (an execute-only binary).
func interpreters(h Host, real string) []string {
	head, err := h.ReadHead(real, 256)
	if err != nil || !bytes.HasPrefix(head, []byte("#!")) {
		return nil
	}
	line, _, _ := bytes.Cut(head[2:], []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) == 0 {
		return nil
	}
	out := []string{f[0]}
	if path.Base(f[0]) == "env" {
		for _, a := range f[1:] {
			if !strings.HasPrefix(a, "-") && !strings.Contains(a, "=") {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// LookPath finds a command named without a slash in the directories of
// pathList (colon-separated, as PATH), as exec would, and verifies what
// it finds. A name with a slash must be absolute and is verified as it
// is.
func LookPath(h Host, name, pathList string) (string, error) {
	if strings.Contains(name, "/") {
		return Verify(h, name)
	}
	if name == "" || name == "." || name == ".." {
		return "", fmt.Errorf("%q is not a program name", name)
	}
	for _, dir := range strings.Split(pathList, ":") {
		if !path.IsAbs(dir) {
			continue // exec would use lvsd's working directory: never
		}
		real, err := Verify(h, path.Join(dir, name))
		var ie *InsecureError
		switch {
		case errors.As(err, &ie):
			ie.Path = name
			ie.Links = append([]string{fmt.Sprintf("%s -> %s (from PATH)", name, path.Join(dir, name))}, ie.Links...)
			return real, ie
		case err == nil:
			return real, nil
		}
	}
	return "", fmt.Errorf("%s: %w in %s: write its full path", name, ErrNotFound, pathList)
}

type walker struct {
	h       Host
	name    string
	trusted uint32
	links   []string
	problem *InsecureError
}

func (w *walker) walk() (string, error) {
	done := "/"
	fi, err := w.h.Lstat("/")
	if err != nil {
		return "", fmt.Errorf("%s: reading /: %w", w.name, err)
	}
	w.judge("/", fi)
	todo := splitPath(w.name)
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case ".":
			continue
		case "..":
			done = path.Dir(done) // done is a real path: no link in it
			continue
		}
		p := path.Join(done, c)
		fi, err := w.h.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s: %s %w: install it, or correct the path", w.name, p, ErrNotFound)
		} else if err != nil {
			return "", fmt.Errorf("%s: reading %s: %w", w.name, p, err)
		}
		if fi.Mode&fs.ModeSymlink != 0 {
			if len(w.links) >= maxLinks {
				return "", fmt.Errorf("%s: more than %d symbolic links (a loop?)", w.name, maxLinks)
			}
			target, err := w.h.Readlink(p)
			if err != nil {
				return "", fmt.Errorf("%s: reading link %s: %w", w.name, p, err)
			}
			w.links = append(w.links, p+" -> "+target)
			if path.IsAbs(target) {
				done = "/"
			}
			todo = append(splitPath(target), todo...)
			continue
		}
		last := len(todo) == 0
		if !last && !fi.Mode.IsDir() {
			return "", fmt.Errorf("%s: %s is not a directory", w.name, p)
		}
		w.judge(p, fi)
		done = p
	}
	if fi, _ := w.h.Lstat(done); !fi.Mode.IsRegular() {
		return "", fmt.Errorf("%s: %s is not a regular file", w.name, done)
	} else if fi.Mode.Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s: %s is not executable (mode %s): chmod 755 %s", w.name, done, octal(fi.Mode), done)
	}
	return done, nil
}

// judge records the first component someone else can change.
func (w *walker) judge(p string, fi FileInfo) {
	if w.problem != nil {
		return
	}
	reason, fix := "", ""
	perm := fi.Mode.Perm()
	switch {
	case fi.UID != 0 && fi.UID != w.trusted:
		reason = "is owned by " + w.who("user", fi.UID, w.h.UserName(fi.UID))
		fix = "chown root " + p
	case perm&0o002 != 0 && fi.Mode&fs.ModeSticky != 0:
		reason = fmt.Sprintf("is writable by every user (mode %s; the sticky bit still lets anyone create a file or link here)", octal(fi.Mode))
		fix = "move the program to a directory only root can write, such as /usr/local/libexec"
	case perm&0o002 != 0 && fi.Mode.IsDir():
		reason = fmt.Sprintf("is writable by every user (mode %s)", octal(fi.Mode))
		fix = "chmod o-w " + p + ", or move the program to a directory only root can write"
	case perm&0o002 != 0:
		reason = fmt.Sprintf("is writable by every user (mode %s)", octal(fi.Mode))
		fix = "chmod o-w " + p
	case perm&0o020 != 0 && fi.GID != 0:
		reason = fmt.Sprintf("is group-writable by %s (mode %s)", w.who("group", fi.GID, w.h.GroupName(fi.GID)), octal(fi.Mode))
		fix = "chmod g-w " + p + ", or chgrp root " + p
	default:
		return
	}
	w.problem = &InsecureError{Path: w.name, Links: append([]string(nil), w.links...), Component: p, Reason: reason, Fix: fix}
}

func (w *walker) who(kind string, id uint32, name string) string {
	if name == "" {
		return fmt.Sprintf("%s %d", map[string]string{"user": "uid", "group": "gid"}[kind], id)
	}
	return fmt.Sprintf("%s %s (%s %d)", kind, name, map[string]string{"user": "uid", "group": "gid"}[kind], id)
}

// octal formats permission bits as chmod takes them: 0755, 1777, 4755.
func octal(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}
