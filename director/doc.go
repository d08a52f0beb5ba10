// Package director is lvsd's daemon: it wires the components under it
// and decides what they do as things happen. A Daemon loads the config
// (director/config), keeps the kernel's IPVS table equal to it through a
// reconcile.Reconciler, turns health results (director/health) into
// weights, holds or drops the VIPs as its VRRP instances (director/vrrp)
// decide, announces them over BGP (director/bgp), runs the notify and
// quorum scripts (director/scripts), and serves its Status and drill
// actions to the status API (director/statusapi) and its counters as
// Prometheus Metrics.
//
// The parts that do not need the daemon live in their own packages:
// reconcile (expand, diff, apply, ownership and the state file), and
// statusapi (the API's types, client, server and listeners).
package director
