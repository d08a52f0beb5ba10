package diag

import (
	"bufio"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Neighbour is an entry of /proc/net/arp.
type Neighbour struct {
	IP        netip.Addr
	MAC       net.HardwareAddr
	Interface string
	Complete  bool
}

// ReadNeighbours reads proc/net/arp from root.
func ReadNeighbours(root fs.FS) ([]Neighbour, error) {
	f, err := root.Open("proc/net/arp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Neighbour
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		ip, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		mac, _ := net.ParseMAC(fields[3])
		flags, _ := strconv.ParseUint(strings.TrimPrefix(fields[2], "0x"), 16, 32)
		out = append(out, Neighbour{IP: ip, MAC: mac, Interface: fields[5], Complete: flags&0x2 != 0})
	}
	return out, sc.Err()
}
