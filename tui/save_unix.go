//go:build unix

package tui

import "syscall"

// oNoFollow refuses a symlink as the last element of a path.
const oNoFollow = syscall.O_NOFOLLOW
