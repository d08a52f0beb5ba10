// Package packaging holds what `make deb` builds the Debian package from
// (nfpm.yaml, the systemd unit, docgen for the man pages, completions and
// default config). Its VM test (tag vmtest) installs the package with
// dpkg and runs lvsd as the unit does: make test-deb.
package packaging
