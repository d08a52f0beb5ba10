package config

import (
	"bytes"
	"testing"
)

// TestParseHex reads hex as keepalived's read_hex_str does.
func TestParseHex(t *testing.T) {
	for _, tc := range []struct {
		in         string
		wild       bool
		data, mask []byte
		err        bool
	}{
		{in: "0a1B2c", data: []byte{0x0a, 0x1b, 0x2c}},
		{in: "1 0203", data: []byte{0x01, 0x02, 0x03}},
		{in: "abc", data: []byte{0xab, 0x0c}},
		{in: "\t01  02 ", data: []byte{1, 2}},
		{in: "0aXx", wild: true, data: []byte{0x0a, 0x00}, mask: []byte{0x00, 0xff}},
		{in: "X1", wild: true, data: []byte{0x01}, mask: []byte{0xf0}},
		{in: "0aXX", err: true},
		{in: "0g", err: true},
		{in: "  ", err: true},
	} {
		data, mask, err := ParseHex(tc.in, tc.wild)
		if (err != nil) != tc.err || !bytes.Equal(data, tc.data) || !bytes.Equal(mask, tc.mask) {
			t.Errorf("ParseHex(%q, %v) = % x, % x, %v; want % x, % x, error %v", tc.in, tc.wild, data, mask, err, tc.data, tc.mask, tc.err)
		}
	}
}
