// Package vrrp implements the Virtual Router Redundancy Protocol that lets
// two or more lvsd directors share virtual addresses: VRRP version 2
// (RFC 3768, IPv4) and version 3 (RFC 5798, IPv4 and IPv6).
//
// The package has two pure, portable parts that do no I/O:
//
//   - a codec for the VRRP payload of an IP packet (protocol 112):
//     Unmarshal and Advertisement.Marshal. The version 3 checksum covers an
//     IPv4 or IPv6 pseudo-header, so both take the packet's source and
//     destination addresses. Malformed input gives one of the sentinel
//     errors (ErrTruncated, ErrBadChecksum, ...) and never a panic.
//   - the protocol state machine of RFC 5798 section 6.4 (Initialize,
//     Backup, Master) plus a Fault state for failed tracking: a Machine is
//     stepped by events (Startup, AdvertReceived, TimerExpired, ...) with
//     the current time passed in, and answers with the actions the caller
//     must carry out (send an advertisement, add or remove the virtual
//     addresses, announce them with gratuitous ARP or unsolicited neighbour
//     advertisements, arm a timer).
//
// The raw-socket transport and the address announcer live in Linux-only
// files; lvsd wires them to the Machine.
package vrrp
