//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	hostTag  = "host"       // 9p tag of the host's /, read-only
	runTag   = "lvskit.run" // 9p tag of the per-run share
	hostDir  = "/host"
	shareDir = "/share"
	rwDir    = "/rw"
	newRoot  = "/newroot"

	optsHost  = "trans=virtio,version=9p2000.L,msize=512000,cache=loose"
	optsShare = "trans=virtio,version=9p2000.L,msize=512000"

	// Exit codes of the command that the shell convention gives meaning.
	exitNotExecutable = 126
	exitNotFound      = 127
	exitSignalBase    = 128

	tcsbrk = 0x5409 // ioctl: with argument 1 it is tcdrain
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("lvskit-vminit: ")
	g := &guest{}
	if err := g.run(); err != nil {
		log.Print(err)
		if g.stderr != nil {
			fmt.Fprintf(g.stderr, "lvskit vm: %v\n", err)
		}
	}
	g.finish()
}

// guest holds what init keeps open across the chroot.
type guest struct {
	stdout, stderr *os.File // hvc0, hvc1
	exit           *os.File // the run share's exit file
	code           int      // the command's exit code, once it ran
	ran            bool
	steps          []string // guest uptime at each step, for the host's verbose line
}

func (g *guest) run() error {
	if err := mountAll([]mount{
		{"proc", "/proc", "proc", 0, ""},
		{"sysfs", "/sys", "sysfs", 0, ""},
		{"devtmpfs", "/dev", "devtmpfs", 0, ""},
	}); err != nil {
		return err
	}
	g.step("init")
	loadModules("/etc/lvskit-modules")
	g.step("modules")
	if out, err := exec.Command("/bin/busybox", "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		log.Printf("bringing up lo: %v: %s", err, out)
	}
	if err := syscall.Sethostname([]byte("lvskit-vm")); err != nil {
		log.Printf("setting hostname: %v", err)
	}
	if err := mountAll([]mount{
		{hostTag, hostDir, "9p", syscall.MS_RDONLY, optsHost},
		{runTag, shareDir, "9p", 0, optsShare},
	}); err != nil {
		return err
	}
	g.step("9p")
	s, err := readSpec(shareDir)
	if err != nil {
		return err
	}
	if err := g.openConsoles(); err != nil {
		return err
	}
	if g.exit, err = os.OpenFile(filepath.Join(shareDir, fileExit), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
		return fmt.Errorf("creating exit file: %w", err)
	}
	started, err := os.OpenFile(filepath.Join(shareDir, fileStarted), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("creating started file: %w", err)
	}
	defer started.Close()

	if err := enterRoot(s.Modules); err != nil {
		return err
	}
	for i, dir := range s.RW {
		if err := mountAll([]mount{{rwTag(i), dir, "9p", 0, optsShare}}); err != nil {
			return err
		}
	}
	g.step("root")
	if err := os.Chdir(s.Dir); err != nil {
		return fmt.Errorf("entering the host's working directory: %w", err)
	}
	cmd, code := g.command(s)
	if cmd == nil {
		g.code, g.ran = code, true
		return nil
	}
	g.step("command")
	if _, err := fmt.Fprintf(started, "%s\n", strings.Join(g.steps, " ")); err != nil {
		return fmt.Errorf("writing started file: %w", err)
	}
	started.Close()
	g.code, g.ran = exitCode(cmd.Run(), cmd), true
	return nil
}

// command prepares the command; when it cannot be started it returns nil and
// the exit code a shell would give.
func (g *guest) command(s spec) (*exec.Cmd, int) {
	path, _ := lookupEnv(s.Env, "PATH")
	os.Setenv("PATH", path)
	name, err := exec.LookPath(s.Argv[0])
	if errors.Is(err, exec.ErrDot) {
		err = nil // a shell runs it too
	}
	if err != nil {
		fmt.Fprintf(g.stderr, "lvskit vm: %v\n", err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, exitNotFound
		}
		return nil, exitNotExecutable
	}
	// Pipes, not the tty, as on the host. One pipe for both keeps their order.
	stdout, stderr := plainWriter{g.stdout}, plainWriter{g.stderr}
	if s.Merge {
		stderr = stdout
	}
	return &exec.Cmd{
		Path:   name,
		Args:   s.Argv,
		Env:    append(s.Env, "LVSKIT_IN_VM=1"),
		Stdout: stdout,
		Stderr: stderr,
		// A daemon the command leaves behind may hold the pipes open.
		WaitDelay: 5 * time.Second,
	}, 0
}

// plainWriter hides the *os.File so os/exec copies through a pipe.
type plainWriter struct{ io.Writer }

// exitCode turns the outcome of cmd.Run into a shell-style exit code.
func exitCode(err error, cmd *exec.Cmd) int {
	ps := cmd.ProcessState
	if ps == nil {
		fmt.Fprintf(cmd.Stderr, "lvskit vm: %v\n", err)
		return exitNotExecutable
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		fmt.Fprintf(cmd.Stderr, "lvskit vm: the command's output was still open %v after it exited\n", cmd.WaitDelay)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignalBase + int(ws.Signal())
	}
	return ps.ExitCode()
}

// finish hands the exit code to the host and powers off. Without an exit file
// the host reports the VM as failed and shows the serial log.
func (g *guest) finish() {
	for _, f := range []*os.File{g.stdout, g.stderr} {
		if f != nil {
			drain(f)
		}
	}
	if g.exit != nil && g.ran {
		if _, err := fmt.Fprintf(g.exit, "%d\n", g.code); err != nil {
			log.Printf("writing exit code: %v", err)
		}
		if err := g.exit.Sync(); err != nil {
			log.Printf("syncing exit code: %v", err)
		}
		g.exit.Close()
	}
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		log.Printf("powering off: %v", err)
	}
	select {} // PID 1 must not exit
}

// openConsoles opens hvc0 and hvc1 in raw mode: no newline translation.
func (g *guest) openConsoles() error {
	var err error
	for _, c := range []struct {
		path string
		dst  **os.File
	}{{"/dev/hvc0", &g.stdout}, {"/dev/hvc1", &g.stderr}} {
		if *c.dst, err = os.OpenFile(c.path, os.O_WRONLY|syscall.O_NOCTTY, 0); err != nil {
			return fmt.Errorf("opening console: %w", err)
		}
		if err := makeRaw(*c.dst); err != nil {
			return fmt.Errorf("setting %s raw: %w", c.path, err)
		}
	}
	return nil
}

// enterRoot overlays the host's / with a tmpfs, mounts the kernel file
// systems inside, chroots there and binds the kit's modules to /lib/modules.
func enterRoot(hostModules string) error {
	if err := mountAll([]mount{{"tmpfs", rwDir, "tmpfs", 0, "mode=755"}}); err != nil {
		return err
	}
	for _, d := range []string{rwDir + "/upper", rwDir + "/work"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	overlay := "lowerdir=" + hostDir + ",upperdir=" + rwDir + "/upper,workdir=" + rwDir + "/work"
	if err := mountAll([]mount{{"overlay", newRoot, "overlay", 0, overlay}}); err != nil {
		return err
	}
	if err := syscall.Chroot(newRoot); err != nil {
		return fmt.Errorf("chroot %s: %w", newRoot, err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	var uts syscall.Utsname
	if err := syscall.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	return mountAll([]mount{
		{"proc", "/proc", "proc", 0, ""},
		{"sysfs", "/sys", "sysfs", 0, ""},
		{"devtmpfs", "/dev", "devtmpfs", 0, ""},
		{"devpts", "/dev/pts", "devpts", 0, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{"tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", 0, "mode=755"},
		{"tracefs", "/sys/kernel/tracing", "tracefs", 0, ""},
		{"debugfs", "/sys/kernel/debug", "debugfs", 0, ""},
		{"bpf", "/sys/fs/bpf", "bpf", 0, "mode=700"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", 0, ""},
		{hostModules, "/lib/modules/" + cString(uts.Release[:]), "", syscall.MS_BIND, ""},
	})
}

type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func mountAll(ms []mount) error {
	for _, m := range ms {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("mounting %s: %w", m.target, err)
		}
		if err := syscall.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.source, m.target, err)
		}
	}
	return nil
}

// loadModules preloads the modules listed one a line in path, in order.
// Autoloading an ip_vs scheduler while a network namespace is torn down
// deadlocks IPVS, so every ip_vs* module is loaded here.
func loadModules(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		log.Printf("reading module list: %v", err)
		return
	}
	names := strings.Fields(string(b))
	if len(names) == 0 {
		return
	}
	out, err := exec.Command("/sbin/modprobe", append([]string{"-a"}, names...)...).CombinedOutput()
	if err != nil {
		log.Printf("loading modules: %v: %s", err, out)
	}
}

func makeRaw(f *os.File) error {
	var t syscall.Termios
	if err := ioctl(f, syscall.TCGETS, unsafe.Pointer(&t)); err != nil {
		return err
	}
	t.Iflag &^= syscall.IGNBRK | syscall.BRKINT | syscall.PARMRK | syscall.ISTRIP |
		syscall.INLCR | syscall.IGNCR | syscall.ICRNL | syscall.IXON
	t.Oflag &^= syscall.OPOST
	t.Lflag &^= syscall.ECHO | syscall.ECHONL | syscall.ICANON | syscall.ISIG | syscall.IEXTEN
	t.Cflag &^= syscall.CSIZE | syscall.PARENB
	t.Cflag |= syscall.CS8
	return ioctl(f, syscall.TCSETS, unsafe.Pointer(&t))
}

// drain waits until the host has taken everything written to the console.
func drain(f *os.File) {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), tcsbrk, 1); errno != 0 {
		log.Printf("draining %s: %v", f.Name(), errno)
	}
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// step records the guest's uptime at a step of the boot and logs it to the
// serial log.
func (g *guest) step(name string) {
	s := name + " " + uptime() + "s"
	g.steps = append(g.steps, s)
	log.Print(s)
}

// uptime returns the guest's seconds since boot, for the serial log.
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	if _, err := strconv.ParseFloat(f[0], 64); err != nil {
		return "?"
	}
	return f[0]
}

func cString(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}
