package ipvs

// Options configure a Client.
type Options struct {
	// NetNS is the path of a network namespace to program
	// (/run/netns/NAME); empty means the caller's namespace.
	NetNS string
}
