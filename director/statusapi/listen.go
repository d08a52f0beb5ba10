package statusapi

// The listeners and the HTTP server the status API and the metrics
// share.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// SocketMode is the mode of the unix sockets Listen creates: lvsd's user
// and group may connect, others may not.
const SocketMode fs.FileMode = 0o660

// ShutdownTimeout is how long Serve waits for requests in flight once
// its context is done.
const ShutdownTimeout = 5 * time.Second

// ErrSocketInUse is returned by Listen when another process serves on
// the unix socket path.
var ErrSocketInUse = errors.New("another process is serving on this socket")

// Listen opens the listener of a status_listen or metrics_listen
// address (config.ListenAddress's Network and Address): network "tcp"
// with a host:port, or "unix" with a socket path.
//
// A unix socket is created with SocketMode: it is bound in a private
// directory next to the path, given its mode there, and then linked into
// place, so it is never reachable with a looser mode, and it never
// replaces a file that appeared at the path meanwhile. A socket left at
// the path by a process that died is replaced; anything else there (a
// live socket, a regular file, a directory, a symlink, which is never
// followed) is an error, and is left alone. Closing the listener removes
// the socket if the path still names it. Keep the socket in a directory
// only lvsd can write to (/run/lvsd).
func Listen(network, address string) (net.Listener, error) {
	switch network {
	case "tcp":
		ln, err := net.Listen("tcp", address)
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", address, err)
		}
		return ln, nil
	case "unix":
		ln, err := listenUnix(address)
		if err != nil {
			return nil, fmt.Errorf("listening on unix socket %s: %w", address, err)
		}
		return ln, nil
	case "":
		return nil, errors.New("listening: no address (the listener is turned off)")
	}
	return nil, fmt.Errorf("listening on %s: unknown network %q: want tcp or unix", address, network)
}

func listenUnix(path string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, errors.New("the path must be absolute")
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".lvsd")
	if err != nil {
		return nil, fmt.Errorf("creating a private directory for the socket: %w", err)
	}
	defer os.Remove(tmp)
	bound := filepath.Join(tmp, "s")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ul.SetUnlinkOnClose(false)
	defer os.Remove(bound)
	fail := func(err error) (net.Listener, error) {
		ul.Close()
		return nil, err
	}
	// Nobody else can reach the socket in its 0700 directory, so
	// chmod cannot be redirected through a symlink swapped in.
	if err := os.Chmod(bound, SocketMode); err != nil {
		return fail(fmt.Errorf("setting the socket's mode: %w", err))
	}
	// link(2) neither follows nor replaces what is at the path.
	if err := os.Link(bound, path); err != nil {
		return fail(fmt.Errorf("putting the socket in place: %w", err))
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: ul, path: path, fi: fi}, nil
}

// removeStaleSocket removes a socket nobody listens on at path. It
// refuses a live socket and anything that is not a socket.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("refusing to replace %s: it is %s, not a socket", path, describeMode(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return ErrSocketInUse
	}
	// Remove only the socket seen above: if something else took its
	// place while we dialed, leave it.
	now, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if !os.SameFile(fi, now) {
		return fmt.Errorf("refusing to replace %s: it changed while checking it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the stale socket: %w", err)
	}
	return nil
}

func describeMode(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symlink"
	case fs.ModeNamedPipe:
		return "a named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	}
	return "of type " + m.Type().String()
}

// unixListener removes its socket on Close, if the path still names it.
type unixListener struct {
	*net.UnixListener
	path string
	fi   fs.FileInfo
	once sync.Once
}

// Addr is the socket's path (it was bound under another name).
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, lerr := os.Lstat(l.path); lerr == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}

// Serve serves h on ln until ctx is done, then stops accepting and waits
// up to ShutdownTimeout for the requests in flight. It returns nil after
// a graceful shutdown. It closes ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving HTTP on %v: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-served // http.ErrServerClosed
	if err != nil {
		srv.Close()
		return fmt.Errorf("shutting down HTTP on %v: %w", ln.Addr(), err)
	}
	return nil
}
