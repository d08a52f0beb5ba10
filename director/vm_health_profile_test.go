//go:build vmtest

package director_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// profileShares reads a CPU profile (pprof's gzipped protobuf) and
// returns, for each of frames, the share of the CPU samples whose stack
// has a function whose name contains it.
func profileShares(path string, frames ...string) ([]float64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("reading profile %s: %w", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("reading profile %s: %w", path, err)
	}
	type sample struct {
		locations []uint64
		value     int64 // the first value: samples
	}
	var (
		samples   []sample
		strs      []string
		funcName  = map[uint64]int64{}    // function id -> string index
		locFuncs  = map[uint64][]uint64{} // location id -> function ids
		malformed = fmt.Errorf("reading profile %s: malformed", path)
	)
	err = eachField(data, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch num {
		case 2: // sample
			var s sample
			first := true
			err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
				switch num {
				case 1:
					s.locations = appendVarints(s.locations, typ, v, n)
				case 2:
					if first {
						vals := appendVarints(nil, typ, v, n)
						if len(vals) > 0 {
							s.value, first = int64(vals[0]), false
						}
					}
				}
				return nil
			})
			samples = append(samples, s)
			return err
		case 4: // location
			var id uint64
			var funcs []uint64
			err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
				switch num {
				case 1:
					id = n
				case 4: // line
					return eachField(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
						if num == 1 {
							funcs = append(funcs, n)
						}
						return nil
					})
				}
				return nil
			})
			locFuncs[id] = funcs
			return err
		case 5: // function
			var id uint64
			var name int64
			err := eachField(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
				switch num {
				case 1:
					id = n
				case 2:
					name = int64(n)
				}
				return nil
			})
			funcName[id] = name
			return err
		case 6: // string table
			strs = append(strs, string(v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", malformed, err)
	}
	var total int64
	hits := make([]int64, len(frames))
	for _, s := range samples {
		total += s.value
		for i, frame := range frames {
		stack:
			for _, loc := range s.locations {
				for _, fn := range locFuncs[loc] {
					if idx := funcName[fn]; idx >= 0 && idx < int64(len(strs)) && strings.Contains(strs[idx], frame) {
						hits[i] += s.value
						break stack
					}
				}
			}
		}
	}
	shares := make([]float64, len(frames))
	for i := range hits {
		shares[i] = float64(hits[i]) / float64(max(total, 1))
	}
	return shares, nil
}

// eachField calls fn for each field of a protobuf message: v is the
// bytes of a length-delimited field, n the value of a varint.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if err := fn(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}

// appendVarints appends a repeated varint field's values, packed or not.
func appendVarints(dst []uint64, typ protowire.Type, v []byte, n uint64) []uint64 {
	if typ == protowire.VarintType {
		return append(dst, n)
	}
	for len(v) > 0 {
		x, l := protowire.ConsumeVarint(v)
		if l < 0 {
			break
		}
		dst = append(dst, x)
		v = v[l:]
	}
	return dst
}
