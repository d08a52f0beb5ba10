package statusapi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"strings"
)

// EncodedService is one service's status as JSON, encoded once by the
// daemon and kept while the service does not change: at 10,000 services
// a request then writes the services' bytes rather than encoding them
// again (about 10 MB of JSON).
type EncodedService struct {
	// Key is the service's key, as in ServiceStatus.Key.
	Key string
	// JSON is EncodeService's encoding of the service's status. It is
	// never modified once made: requests share it.
	JSON []byte
	// Gen changes whenever JSON does (a new encoding gets a new Gen);
	// ETags are made of it.
	Gen uint64
}

// EncodeService encodes a service's status for an EncodedService: as
// encoding/json encodes it inside Status, byte for byte.
func EncodeService(s ServiceStatus) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding the status of %s: %w", s.Key, err)
	}
	return b, nil
}

// Encoded is a Status whose services are already encoded: what the
// status API serves. Status.Services is ignored; Services stand in for
// it, in order.
type Encoded struct {
	Status   Status
	Services []EncodedService
}

// servicesMark is how an empty services list reads in Status's JSON.
// The key cannot occur earlier in the encoding: the fields before it are
// strings and times, and inside a JSON string a quote is escaped.
var servicesMark = []byte(`"services":[]`)

// frame encodes everything but the services, and returns it cut where
// the services go: before is up to and with `"services":[`, after
// begins with its `]`.
func (e *Encoded) frame() (before, after []byte, err error) {
	st := e.Status
	st.Services = []ServiceStatus{}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the status: %w", err)
	}
	i := bytes.Index(b, servicesMark)
	if i < 0 {
		return nil, nil, errors.New("encoding the status: no services in it")
	}
	cut := i + len(servicesMark) - 1
	return b[:cut], b[cut:], nil
}

// Filter keeps the services whose address is vip (their protocol and
// port any; fwmark services have no address and go).
func (e Encoded) Filter(vip netip.Addr) Encoded {
	var kept []EncodedService
	for _, s := range e.Services {
		if a, ok := keyAddr(s.Key); ok && a == vip {
			kept = append(kept, s)
		}
	}
	e.Services = kept
	return e
}

// keyAddr is the address of a service key: "TCP 192.168.0.100:80",
// "UDP [2001:db8::53]:53"; a fwmark ("FWM 1") has none.
func keyAddr(key string) (netip.Addr, bool) {
	_, ap, ok := strings.Cut(key, " ")
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddrPort(ap)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Addr().Unmap(), true
}

// Writer writes an Encoded status: its ETag first, then its JSON.
type Writer struct {
	e             *Encoded
	before, after []byte
}

// NewWriter encodes everything in e but the services (the timeline,
// VRRP, BGP, a few fields), which is cheap next to them.
func NewWriter(e *Encoded) (*Writer, error) {
	before, after, err := e.frame()
	if err != nil {
		return nil, err
	}
	return &Writer{e: e, before: before, after: after}, nil
}

// ETag is a strong entity tag of the JSON that WriteTo writes: it
// differs whenever a byte would (with the odds of a 64-bit hash), and
// costs no pass over the services' bytes.
func (w *Writer) ETag() string {
	h := fnv.New64a()
	h.Write(w.before)
	var b [8]byte
	for _, s := range w.e.Services {
		binary.LittleEndian.PutUint64(b[:], s.Gen)
		h.Write(b[:])
	}
	h.Write(w.after)
	return fmt.Sprintf(`"%016x"`, h.Sum64())
}

// Len is how many bytes WriteTo writes.
func (w *Writer) Len() int {
	n := len(w.before) + len(w.after) + 1
	for i, s := range w.e.Services {
		if i > 0 {
			n++
		}
		n += len(s.JSON)
	}
	return n
}

// WriteTo writes the status as json.NewEncoder(out).Encode would write
// the Status with its services, byte for byte (with its newline).
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	var n int64
	write := func(b []byte) error {
		m, err := out.Write(b)
		n += int64(m)
		return err
	}
	if err := write(w.before); err != nil {
		return n, err
	}
	comma := []byte{','}
	for i, s := range w.e.Services {
		if i > 0 {
			if err := write(comma); err != nil {
				return n, err
			}
		}
		if err := write(s.JSON); err != nil {
			return n, err
		}
	}
	if err := write(w.after); err != nil {
		return n, err
	}
	return n, write([]byte{'\n'})
}
