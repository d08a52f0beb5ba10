package config

import "fmt"

// ParseHex reads bytes written in hex digits as keepalived's UDP_CHECK
// reads its payload and reply: spaces and tabs separate groups, two
// digits make a byte, a digit alone before a space or the end is a
// byte of its own ("1 0203" is 01 02 03). With wildcards, an X digit
// matches anything: its bits are set in mask (nil when there is no X).
func ParseHex(s string, wildcards bool) (data, mask []byte, err error) {
	digit := func(c byte) (v byte, wild, ok bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', false, true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, false, true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, false, true
		case wildcards && (c == 'X' || c == 'x'):
			return 0, true, true
		}
		return 0, false, false
	}
	var masks []byte
	wild := false
	for i := 0; i < len(s); {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		v, w, ok := digit(s[i])
		if !ok {
			return nil, nil, fmt.Errorf("%q at offset %d is not a hex digit", s[i], i)
		}
		var m byte
		if w {
			m = 0x0f
		}
		i++
		if i < len(s) && s[i] != ' ' && s[i] != '\t' {
			v2, w2, ok := digit(s[i])
			if !ok {
				return nil, nil, fmt.Errorf("%q at offset %d is not a hex digit", s[i], i)
			}
			v, m = v<<4|v2, m<<4
			if w2 {
				m |= 0x0f
			}
			i++
		}
		data = append(data, v)
		masks = append(masks, m)
		wild = wild || m != 0
	}
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("no hex digits")
	}
	if wild {
		mask = masks
	}
	return data, mask, nil
}
