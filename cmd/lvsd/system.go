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

// runCommand runs a command from an argument list, without a shell.
func runCommand(log *slog.Logger) func(ctx context.Context, argv []string) error {
	return func(ctx context.Context, argv []string) error {
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		log.Info("ran command", "argv", argv, "output", string(bytes.TrimSpace(out)), "err", err)
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
