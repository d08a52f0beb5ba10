package ipvs

// The connection states and protocols as /proc/net/ip_vs_conn names them.

import ()

// ConnState is the state of a connection table entry. The names are the
// kernel's; TCP and SCTP share NONE and ESTABLISHED.
type ConnState uint8

// Connection states: TCP (ip_vs_proto_tcp.c), UDP, SCTP
// (ip_vs_proto_sctp.c) and persistence templates (ip_vs_proto.c).
const (
	StateUnknown              ConnState = iota // a name lvskit does not know, or the kernel's "?", "ERR!", "BUG!"
	StateNone                                  // NONE
	StateEstablished                           // ESTABLISHED (TCP and SCTP)
	StateSynSent                               // SYN_SENT
	StateSynRecv                               // SYN_RECV
	StateFinWait                               // FIN_WAIT
	StateTimeWait                              // TIME_WAIT
	StateClose                                 // CLOSE
	StateCloseWait                             // CLOSE_WAIT
	StateLastAck                               // LAST_ACK
	StateListen                                // LISTEN
	StateSynAck                                // SYNACK
	StateUDP                                   // UDP: the one UDP state
	StateSCTPInit1                             // INIT1
	StateSCTPInit                              // INIT
	StateSCTPCookieSent                        // C-SENT
	StateSCTPCookieReplied                     // C-REPLIED
	StateSCTPCookieWait                        // C-WAIT
	StateSCTPCookie                            // COOKIE
	StateSCTPCookieEchoed                      // C-ECHOED
	StateSCTPShutdownSent                      // S-SENT
	StateSCTPShutdownReceived                  // S-RECEIVED
	StateSCTPShutdownAckSent                   // S-ACK-SENT
	StateSCTPRejected                          // REJECTED
	StateSCTPClosed                            // CLOSED
	StateAssured                               // ASSURED: a template that saw traffic
	numConnStates
)

var connStateNames = [numConnStates]string{
	StateUnknown:              "?",
	StateNone:                 "NONE",
	StateEstablished:          "ESTABLISHED",
	StateSynSent:              "SYN_SENT",
	StateSynRecv:              "SYN_RECV",
	StateFinWait:              "FIN_WAIT",
	StateTimeWait:             "TIME_WAIT",
	StateClose:                "CLOSE",
	StateCloseWait:            "CLOSE_WAIT",
	StateLastAck:              "LAST_ACK",
	StateListen:               "LISTEN",
	StateSynAck:               "SYNACK",
	StateUDP:                  "UDP",
	StateSCTPInit1:            "INIT1",
	StateSCTPInit:             "INIT",
	StateSCTPCookieSent:       "C-SENT",
	StateSCTPCookieReplied:    "C-REPLIED",
	StateSCTPCookieWait:       "C-WAIT",
	StateSCTPCookie:           "COOKIE",
	StateSCTPCookieEchoed:     "C-ECHOED",
	StateSCTPShutdownSent:     "S-SENT",
	StateSCTPShutdownReceived: "S-RECEIVED",
	StateSCTPShutdownAckSent:  "S-ACK-SENT",
	StateSCTPRejected:         "REJECTED",
	StateSCTPClosed:           "CLOSED",
	StateAssured:              "ASSURED",
}

// String returns the kernel's name of the state.
func (s ConnState) String() string {
	if s < numConnStates {
		return connStateNames[s]
	}
	return "?"
}

// ParseConnState maps a kernel state name to a ConnState; unknown names
// give StateUnknown and false.
func ParseConnState(name string) (ConnState, bool) {
	return connStateOf([]byte(name))
}

func connStateOf(b []byte) (ConnState, bool) {
	// A switch on string(b) compiles to comparisons without allocating.
	switch string(b) {
	case "ESTABLISHED":
		return StateEstablished, true
	case "TIME_WAIT":
		return StateTimeWait, true
	case "FIN_WAIT":
		return StateFinWait, true
	case "UDP":
		return StateUDP, true
	case "NONE":
		return StateNone, true
	case "SYN_RECV":
		return StateSynRecv, true
	case "CLOSE":
		return StateClose, true
	case "CLOSE_WAIT":
		return StateCloseWait, true
	case "LAST_ACK":
		return StateLastAck, true
	case "SYN_SENT":
		return StateSynSent, true
	case "LISTEN":
		return StateListen, true
	case "SYNACK":
		return StateSynAck, true
	case "ASSURED":
		return StateAssured, true
	case "INIT1":
		return StateSCTPInit1, true
	case "INIT":
		return StateSCTPInit, true
	case "C-SENT":
		return StateSCTPCookieSent, true
	case "C-REPLIED":
		return StateSCTPCookieReplied, true
	case "C-WAIT":
		return StateSCTPCookieWait, true
	case "COOKIE":
		return StateSCTPCookie, true
	case "C-ECHOED":
		return StateSCTPCookieEchoed, true
	case "S-SENT":
		return StateSCTPShutdownSent, true
	case "S-RECEIVED":
		return StateSCTPShutdownReceived, true
	case "S-ACK-SENT":
		return StateSCTPShutdownAckSent, true
	case "REJECTED":
		return StateSCTPRejected, true
	case "CLOSED":
		return StateSCTPClosed, true
	}
	return StateUnknown, false
}

// procProtocol parses ip_vs_proto_name()'s output.
func procProtocol(b []byte) (Protocol, bool) {
	switch string(b) {
	case "TCP":
		return TCP, true
	case "UDP":
		return UDP, true
	case "SCTP":
		return SCTP, true
	case "IP":
		return ProtoIP, true
	case "ICMP":
		return ProtoICMP, true
	case "ICMPv6":
		return ProtoICMPv6, true
	case "IPIP":
		return ProtoIPIP, true
	case "GRE":
		return ProtoGRE, true
	}
	if len(b) > 3 && string(b[:3]) == "IP_" {
		if n, ok := parseDec(b[3:]); ok && n <= 255 {
			return Protocol(n), true
		}
	}
	return 0, false
}

// ProcProtocolName returns the name the kernel's /proc files give a
// protocol: "TCP", "UDP", "SCTP", "IP" (0), "ICMP", ..., "IP_n".
func ProcProtocolName(p Protocol) string {
	switch p {
	case TCP, UDP, SCTP:
		return p.String()
	case ProtoIP:
		return "IP"
	case ProtoICMP:
		return "ICMP"
	case ProtoICMPv6:
		return "ICMPv6"
	case ProtoIPIP:
		return "IPIP"
	case ProtoGRE:
		return "GRE"
	}
	return "IP_" + uitoa(uint64(p))
}

func uitoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// Protocol numbers that appear in the connection table besides TCP, UDP
// and SCTP.
const (
	ProtoIP     Protocol = 0 // "IP": fwmark persistence templates
	ProtoICMP   Protocol = 1
	ProtoIPIP   Protocol = 4
	ProtoGRE    Protocol = 47
	ProtoICMPv6 Protocol = 58
)
