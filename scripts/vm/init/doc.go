// Command init is PID 1 of the lvskit test VM that scripts/vm/run boots.
//
// It preloads the kernel modules named in /etc/lvskit-modules, mounts the
// host's root file system (9p, read-only) under a tmpfs overlay so the guest
// can write, mounts proc, sys, dev, tracefs, debugfs, bpffs and cgroup2 inside
// it, chroots there and runs the command from the run share with the host's
// environment and working directory. The command's stdout and stderr go to the
// virtio consoles hvc0 and hvc1 (the host's stdout and stderr), its exit code
// to the run share; then the VM powers off. Its own messages go to the kernel
// console (ttyS0, the serial log on the host).
//
// The runner builds it (CGO_ENABLED=0) and appends it to the kit's initramfs.
package main
