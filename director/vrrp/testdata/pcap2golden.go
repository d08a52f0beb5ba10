//go:build ignore

// pcap2golden turns a tcpdump capture of VRRP adverts into the golden
// vectors under testdata/golden: for every VRID named with -label it writes
// the first advert with a non-zero priority and the first priority-0
// advert (sent when the master shuts down). It reads classic pcap files
// with Ethernet framing (tcpdump -w on a veth). capture.sh runs it:
//
//	go run pcap2golden.go -pcap vrrp.pcap -out golden -source "..." \
//		-label '51=v2-noauth=VRRPv2, no authentication, 3 VIPs' ...
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

type label struct {
	name, description string
}

type labels map[uint8]label

func (l labels) String() string { return fmt.Sprint(map[uint8]label(l)) }

func (l labels) Set(s string) error {
	parts := strings.SplitN(s, "=", 3)
	if len(parts) != 3 {
		return fmt.Errorf("label %q: want VRID=name=description", s)
	}
	vrid, err := strconv.ParseUint(parts[0], 10, 8)
	if err != nil {
		return fmt.Errorf("label %q: %w", s, err)
	}
	l[uint8(vrid)] = label{name: parts[1], description: parts[2]}
	return nil
}

type packet struct {
	src, dst netip.Addr
	ttl      uint8
	payload  []byte
}

func main() {
	pcapPath := flag.String("pcap", "", "capture file (tcpdump -w)")
	outDir := flag.String("out", "golden", "directory for the .hex files")
	source := flag.String("source", "", "one line naming the sender, written into every file")
	want := labels{}
	flag.Var(want, "label", "VRID=file-name=description (repeatable)")
	flag.Parse()
	if err := run(*pcapPath, *outDir, *source, want); err != nil {
		fmt.Fprintln(os.Stderr, "pcap2golden:", err)
		os.Exit(1)
	}
}

func run(pcapPath, outDir, source string, want labels) error {
	f, err := os.Open(pcapPath)
	if err != nil {
		return err
	}
	defer f.Close()
	frames, err := readPcap(f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", pcapPath, err)
	}
	written := map[string]bool{}
	for _, frame := range frames {
		p, ok := vrrpPacket(frame)
		if !ok || len(p.payload) < 8 {
			continue
		}
		l, ok := want[p.payload[1]]
		if !ok {
			continue
		}
		name := l.name
		what := "first advertisement"
		if p.payload[2] == 0 {
			name += "-shutdown"
			what = "priority 0 advertisement sent on shutdown"
		}
		if written[name] {
			continue
		}
		written[name] = true
		if err := writeGolden(filepath.Join(outDir, name+".hex"), source, l.description, what, p); err != nil {
			return err
		}
	}
	for _, l := range want {
		for _, name := range []string{l.name, l.name + "-shutdown"} {
			if !written[name] {
				return fmt.Errorf("no packet for %s in %s", name, pcapPath)
			}
		}
	}
	return nil
}

func writeGolden(path, source, description, what string, p packet) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# VRRP payload captured from a real sender by testdata/capture.sh; do not edit.\n")
	fmt.Fprintf(&b, "# source: %s\n", source)
	fmt.Fprintf(&b, "# instance: %s\n", description)
	fmt.Fprintf(&b, "# packet: %s\n", what)
	fmt.Fprintf(&b, "src %s\ndst %s\nttl %d\npayload\n", p.src, p.dst, p.ttl)
	for off := 0; off < len(p.payload); off += 16 {
		end := min(off+16, len(p.payload))
		var words []string
		for w := off; w < end; w += 4 {
			words = append(words, hex.EncodeToString(p.payload[w:min(w+4, end)]))
		}
		fmt.Fprintln(&b, strings.Join(words, " "))
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// readPcap returns the frames of a classic pcap file with Ethernet framing.
func readPcap(r io.Reader) ([][]byte, error) {
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(hdr[0:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return nil, errors.New("not a classic pcap file")
	}
	if lt := order.Uint32(hdr[20:24]); lt != 1 {
		return nil, fmt.Errorf("link type %d, want 1 (Ethernet)", lt)
	}
	var frames [][]byte
	for {
		var rec [16]byte
		if _, err := io.ReadFull(r, rec[:]); err == io.EOF {
			return frames, nil
		} else if err != nil {
			return nil, err
		}
		frame := make([]byte, order.Uint32(rec[8:12]))
		if _, err := io.ReadFull(r, frame); err != nil {
			return nil, err
		}
		frames = append(frames, frame)
	}
}

// vrrpPacket extracts the IP protocol 112 payload of an Ethernet frame,
// trimmed to the IP length (dropping Ethernet padding).
func vrrpPacket(frame []byte) (packet, bool) {
	if len(frame) < 14 {
		return packet{}, false
	}
	ip := frame[14:]
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x0800:
		if len(ip) < 20 || ip[9] != 112 {
			return packet{}, false
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if total > len(ip) || ihl > total {
			return packet{}, false
		}
		src, _ := netip.AddrFromSlice(ip[12:16])
		dst, _ := netip.AddrFromSlice(ip[16:20])
		return packet{src: src, dst: dst, ttl: ip[8], payload: ip[ihl:total]}, true
	case 0x86dd:
		if len(ip) < 40 || ip[6] != 112 {
			return packet{}, false
		}
		end := 40 + int(binary.BigEndian.Uint16(ip[4:6]))
		if end > len(ip) {
			return packet{}, false
		}
		src, _ := netip.AddrFromSlice(ip[8:24])
		dst, _ := netip.AddrFromSlice(ip[24:40])
		return packet{src: src, dst: dst, ttl: ip[7], payload: ip[40:end]}, true
	}
	return packet{}, false
}
