// Package jsonw appends JSON to a byte slice, byte for byte as
// encoding/json's Marshal writes the same values, for the few hot
// objects lvskit encodes by hand: the status API's services, encoded
// again whenever their real servers were checked (10,000 of them a
// request at the largest size). encoding/json stays the reference: each
// user tests its encoder against it.
package jsonw

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Object is a JSON object being appended to B: Open, its members, then
// Close.
type Object struct {
	B    []byte
	more bool
}

// Open starts an object at the end of b.
func Open(b []byte) Object { return Object{B: append(b, '{')} }

// Close ends the object and returns the bytes.
func (o *Object) Close() []byte { return append(o.B, '}') }

// Key starts a member: a comma after the one before, then "name":.
// name is written as it is: a Go struct tag's name, which needs no
// escaping.
func (o *Object) Key(name string) {
	if o.more {
		o.B = append(o.B, ',')
	}
	o.more = true
	o.B = append(o.B, '"')
	o.B = append(o.B, name...)
	o.B = append(o.B, '"', ':')
}

// String is a string member.
func (o *Object) String(name, v string) {
	o.Key(name)
	o.B = AppendString(o.B, v)
}

// StringOmitEmpty is a string member tagged omitempty.
func (o *Object) StringOmitEmpty(name, v string) {
	if v != "" {
		o.String(name, v)
	}
}

// Int is an integer member.
func (o *Object) Int(name string, v int64) {
	o.Key(name)
	o.B = strconv.AppendInt(o.B, v, 10)
}

// Bool is a boolean member.
func (o *Object) Bool(name string, v bool) {
	o.Key(name)
	o.B = strconv.AppendBool(o.B, v)
}

// TimeOmitZero is a time.Time member tagged omitzero. It reports false,
// having written nothing, for a time encoding/json refuses to encode (a
// year outside 0-9999, an offset of 24 hours or more): the caller encodes the whole value with encoding/json, which
// says why.
func (o *Object) TimeOmitZero(name string, t time.Time) bool {
	if t.IsZero() {
		return true
	}
	if !Encodable(t) {
		return false
	}
	o.Key(name)
	o.B = append(o.B, '"')
	o.B = t.AppendFormat(o.B, time.RFC3339Nano)
	o.B = append(o.B, '"')
	return true
}

// Encodable says whether encoding/json encodes t as RFC 3339 text (what
// TimeOmitZero writes) rather than failing.
func Encodable(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off > -24*3600 && off < 24*3600
}

// AppendString appends s as a JSON string, escaped as encoding/json
// escapes it: quotes, backslashes and control characters; <, > and & as
// \u003c, \u003e and \u0026; U+2028 and U+2029; each byte of invalid
// UTF-8 as \ufffd.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default: // other control characters, <, >, &
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// plain holds the ASCII bytes written as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
