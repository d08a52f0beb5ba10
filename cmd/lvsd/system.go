package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/lvskit/lvskit/director/scripts"
)

// modprobe loads kernel modules; built-in ones succeed as no-ops.
func modprobe(names []string) error {
	if len(names) == 0 {
		return nil
	}
	out, err := exec.Command("modprobe", append([]string{"-a"}, names...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe -a %s: %w: %s", strings.Join(names, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// writeSysctl writes net.ipv4.vs.KEY under /proc/sys, never creating a file.
func writeSysctl(key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("setting %s: %w", key, err)
	}
	defer f.Close()
	if _, err := f.WriteString(value); err != nil {
		return fmt.Errorf("setting %s = %s: %w", key, value, err)
	}
	return nil
}

// runCommand runs a notify or quorum command: without a shell, as its
// script user, in its own process group (killed as a whole at the
// timeout), with a clean environment.
func runCommand(log *slog.Logger) func(ctx context.Context, p scripts.Program) error {
	return func(ctx context.Context, p scripts.Program) error {
		err := p.Run(ctx)
		log.Info("ran command", "argv", p.Args, "path", p.Path, "user", p.User.String(), "err", err)
		return err
	}
}

// sdNotify sends a state to systemd's NOTIFY_SOCKET (Type=notify), if set.
func sdNotify(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	if strings.HasPrefix(sock, "@") {
		sock = "\x00" + sock[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
