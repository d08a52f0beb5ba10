// Package scripts is how lvsd runs the programs its config names (check
// scripts, VRRP track scripts, notify and quorum commands): who could
// have changed them (Verify, LookPath), whom they run as (Credential,
// LookupCredential), and the one way they are started (Program.Command,
// Program.Run).
//
// lvsd runs as root, so a script that another user can rewrite, or a
// directory on its way that another user can write, hands that user
// root. Verify walks a path the way the kernel resolves it, following
// every symbolic link, and refuses it when any component is owned by a
// user other than root (or lvsd's own user), writable by every user
// (sticky or not), or writable by a group other than gid 0. The checks
// run when the config is loaded, never per run; a Program carries the
// resolved absolute path, so a later change to PATH or to a directory
// earlier in it does not change what runs.
//
// Everything the checks read from the system goes through Host, so that
// they are tested on a fake filesystem (scriptstest) without root.
package scripts
