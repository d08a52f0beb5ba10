//go:build !unix

package tui

// oNoFollow: os.Root already refuses symlinks that leave the root, and
// O_EXCL refuses an existing name.
const oNoFollow = 0
