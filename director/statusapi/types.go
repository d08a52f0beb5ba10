// Package statusapi is lvsd's status API on the wire: the JSON types the
// daemon serves and a Client that reads them over HTTP or a unix socket.
// lvstop and lvsdiag import it to read a running lvsd without importing
// the daemon itself. The server is here too (NewAPIHandler, Listen,
// Serve): it takes the daemon's Status as a func and its drill actions
// as Drills, so it imports nothing of the daemon.
package statusapi

import "time"

// Status is what lvsd publishes about itself: GET /status serves it as
// JSON. It is a snapshot: nothing in it changes after it is taken.
type Status struct {
	// Version is the lvsd build serving this status ("1.2.0", as
	// `lvsd --version` prints it); empty from an lvsd that predates it.
	Version string `json:"version,omitempty"`
	// Config is the file the running config came from; Loaded is when.
	Config string    `json:"config"`
	Loaded time.Time `json:"loaded"`
	// LastReloadError is the error of the last rejected reload, if any:
	// the running config kept serving.
	LastReloadError string          `json:"last_reload_error,omitempty"`
	Services        []ServiceStatus `json:"services"`
	// Unowned are kernel services lvsd does not own and leaves alone.
	Unowned []string `json:"unowned,omitempty"`
	// VRRP are the VRRP instances, in config order; empty without.
	VRRP []VRRPStatus `json:"vrrp,omitempty"`
	// BGP is the BGP speaker and what it announces; nil without a bgp
	// section.
	BGP *BGPStatus `json:"bgp,omitempty"`
	// Events are the most recent events, oldest first.
	Events []Event `json:"events"`
}

// ServiceStatus is one virtual service lvsd owns.
type ServiceStatus struct {
	Key       string `json:"key"` // "TCP 192.168.0.100:80", "FWM 1"
	Name      string `json:"name,omitempty"`
	Source    string `json:"source"` // file:line of its config
	Scheduler string `json:"scheduler"`
	// InKernel is false while lvsd could not install the service.
	InKernel    bool               `json:"in_kernel"`
	RealServers []RealServerStatus `json:"real_servers"`
	// SorryServer is set while the sorry server is installed.
	SorryServer string `json:"sorry_server,omitempty"`
	// Quorum is "up", "down" or "" without a quorum; UpWeight is the sum
	// of the weights of the real servers that are up.
	Quorum   string `json:"quorum,omitempty"`
	UpWeight int    `json:"up_weight"`
}

// RealServerStatus is one configured real server.
type RealServerStatus struct {
	Address    string `json:"address"` // "10.0.0.2:80"
	Forwarding string `json:"forwarding"`
	// Weight is the configured weight; KernelWeight what the kernel has
	// now (0 when quiesced), -1 when it is not in the kernel (removed).
	Weight       int32 `json:"weight"`
	KernelWeight int32 `json:"kernel_weight"`
	// Health is "up", "down" or "unknown" (not checked yet); a real
	// server without a check is always "up".
	Health string    `json:"health"`
	Since  time.Time `json:"since,omitzero"`
	// Check describes the check ("http GET /healthz on 10.0.0.2:80").
	Check string `json:"check,omitempty"`
	// LastResult is the last check's result: "HTTP 503 from
	// 10.0.0.2:80"; LastCheck when it ran.
	LastResult string    `json:"last_result,omitempty"`
	LastCheck  time.Time `json:"last_check,omitzero"`
	// Why explains a real server that is out: "HTTP 503 from 10.0.0.2:80
	// at 12:00:03, 3 of 3 failures".
	Why string `json:"why,omitempty"`
}

// VRRPStatus is one VRRP instance.
type VRRPStatus struct {
	Name      string `json:"name"`
	VRID      uint8  `json:"vrid"`
	Interface string `json:"interface"`
	Version   int    `json:"version"`
	// State is "initialize", "backup", "master" or "fault".
	State string `json:"state"`
	// Priority is the effective priority; ConfiguredPriority the
	// config's.
	Priority           uint8 `json:"priority"`
	ConfiguredPriority uint8 `json:"configured_priority"`
	// Master is the current master's address as far as this director
	// knows (its own when master), and its priority.
	Master         string `json:"master,omitempty"`
	MasterPriority uint8  `json:"master_priority,omitempty"`
	// Since is the last transition and Reason why it happened;
	// MasterSince is when this director became master, while it is.
	Since       time.Time `json:"since,omitzero"`
	Reason      string    `json:"reason,omitempty"`
	MasterSince time.Time `json:"master_since,omitzero"`
	// VIPs are the virtual addresses.
	VIPs []string `json:"vips"`

	AdvertsSent     uint64 `json:"adverts_sent"`
	AdvertsReceived uint64 `json:"adverts_received"`
	BecameMaster    uint64 `json:"became_master"`

	// Fault says why the instance is in fault, while it is.
	Fault string `json:"fault,omitempty"`
	// SyncGroup is the sync group the instance belongs to, if any.
	SyncGroup string `json:"sync_group,omitempty"`
	// Tracking are the tracked links and scripts and what they do to the
	// instance now.
	Tracking []VRRPTrack `json:"tracking,omitempty"`
	// SteppedDownUntil is when a drill's step-down ends, while one is on
	// (POST /vrrp/{instance}/step-down).
	SteppedDownUntil time.Time `json:"stepped_down_until,omitzero"`
	// NoPreempt is set when the instance does not preempt a master of
	// lower priority (preempt: false): after a drill it stays a backup.
	NoPreempt bool `json:"nopreempt,omitempty"`
}

// VRRPTrack is one tracked link or script of a VRRP instance.
type VRRPTrack struct {
	// Kind is "interface" or "script"; Name the link or script.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// State is "up", "down" or "unknown" (not known yet).
	State string `json:"state"`
	// Weight is the configured weight: 0 means fault while down.
	Weight int `json:"weight"`
	// Effect is what it does to the instance now: "fault", "+10", "-20",
	// or "" for nothing.
	Effect string `json:"effect,omitempty"`
	// Reason is the last result or link change ("exit status 1",
	// "link down").
	Reason string `json:"reason,omitempty"`
}

// Event is one entry of the timeline.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is "check" (a health transition), "ipvs" (a kernel write or
	// its failure), "drift", "config" (a load or a rejected reload),
	// "quorum", "vrrp" (a VRRP transition) or "daemon".
	Kind       string `json:"kind"`
	Service    string `json:"service,omitempty"`
	RealServer string `json:"real_server,omitempty"`
	Message    string `json:"message"`
}

// BGPStatus is lvsd's BGP speaker: its peers and the VIPs it announces.
type BGPStatus struct {
	ASN      uint32 `json:"asn"`
	RouterID string `json:"router_id"`
	// Phase is "starting" (withdrawn until the first apply succeeds),
	// "running" or "stopping".
	Phase string          `json:"phase"`
	Peers []BGPPeerStatus `json:"peers"`
	VIPs  []BGPVIPStatus  `json:"vips"`
	// LastChange is when a VIP was last announced or withdrawn.
	LastChange time.Time `json:"last_change,omitzero"`
	// Error is the speaker's last error (an announce that failed), if any.
	Error string `json:"error,omitempty"`
}

// BGPPeerStatus is one BGP session.
type BGPPeerStatus struct {
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
	// State is the session's state: "established" when up; "idle",
	// "connect", "active", "opensent", "openconfirm" or "unknown" when not.
	State string `json:"state"`
	Up    bool   `json:"up"`
	// Since is when the session last came up or went down.
	Since time.Time `json:"since,omitzero"`
	// Advertised counts the prefixes sent to the peer.
	Advertised int `json:"advertised"`
}

// BGPVIPStatus is one address announced over BGP, or withdrawn, and why.
type BGPVIPStatus struct {
	Address   string    `json:"address"`
	Prefix    string    `json:"prefix"`
	Announced bool      `json:"announced"`
	Reason    string    `json:"reason"`
	Since     time.Time `json:"since,omitzero"`
	// DrillUntil is when a drill's withdraw ends, while one is on (POST
	// /bgp/{vip}/withdraw).
	DrillUntil time.Time `json:"drill_until,omitzero"`
}
