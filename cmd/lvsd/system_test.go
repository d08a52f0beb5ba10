package main

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestSdNotifyReachesTheServiceManager stands in for systemd's
// NOTIFY_SOCKET and checks lvsd's messages arrive as datagrams.
func TestSdNotifyReachesTheServiceManager(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	for _, want := range []string{"READY=1", "STOPPING=1"} {
		sdNotify(want)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if got := string(buf[:n]); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	t.Setenv("NOTIFY_SOCKET", "")
	sdNotify("READY=1") // no socket: nothing to do, and no panic
}
