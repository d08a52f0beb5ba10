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
// Around them, the parts that do I/O through interfaces, so tests run
// them over the fakes of package vrrptest:
//
//   - Transport reads the packets of one interface and family from a
//     PacketConn, drops and counts those with a TTL other than 255 or that
//     the codec rejects, and hands the rest to the Instance of their VRID.
//   - Instance is one goroutine owning a Machine: it feeds it adverts,
//     timers (from an injected Clock) and tracking events, carries out its
//     actions through the Transport, an AddressManager and an Announcer
//     (gratuitous ARP, unsolicited NA, on keepalived's garp_master_*
//     schedule), and tells Observers of every transition. Reconfigure
//     applies a reloaded config in place (the Reconfigured event), keeping
//     the state as keepalived's reload does.
//
// The Linux implementations live in _linux.go files: Listen (raw IP
// protocol 112 sockets), Snoop (a passive AF_PACKET listener for
// diagnosis), NewNetlinkAddresses and DialFrames (AF_PACKET).
package vrrp
