//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Fprintf(os.Stderr, "lvskit vm init: runs only as PID 1 of the Linux test VM, not on %s/%s\n", runtime.GOOS, runtime.GOARCH)
	os.Exit(2)
}
