package statusapi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"hash/maphash"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/lvskit/lvskit/internal/jsonw"
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
// encoding/json encodes it inside Status, byte for byte. It is written
// out by hand (a service is encoded again whenever one of its real
// servers was checked, 10,000 services a request at the largest size,
// and reflection took four times as long); encoding/json is the
// reference its tests hold it to, and encodes the rare status it does
// not (a time outside RFC 3339's range, for the error).
func EncodeService(s ServiceStatus) ([]byte, error) {
	if b, ok := appendService(make([]byte, 0, 160+320*len(s.RealServers)), &s); ok {
		return b, nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding the status of %s: %w", s.Key, err)
	}
	return b, nil
}

// appendService appends s as encoding/json would; false when a time in
// it is one encoding/json refuses.
func appendService(b []byte, s *ServiceStatus) ([]byte, bool) {
	o := jsonw.Open(b)
	o.String("key", s.Key)
	o.StringOmitEmpty("name", s.Name)
	o.String("source", s.Source)
	o.String("scheduler", s.Scheduler)
	o.Bool("in_kernel", s.InKernel)
	o.Key("real_servers")
	if s.RealServers == nil {
		o.B = append(o.B, "null"...)
	} else {
		o.B = append(o.B, '[')
		for i := range s.RealServers {
			if i > 0 {
				o.B = append(o.B, ',')
			}
			var ok bool
			if o.B, ok = appendRealServer(o.B, &s.RealServers[i]); !ok {
				return nil, false
			}
		}
		o.B = append(o.B, ']')
	}
	o.StringOmitEmpty("sorry_server", s.SorryServer)
	o.StringOmitEmpty("quorum", s.Quorum)
	o.Int("up_weight", int64(s.UpWeight))
	return o.Close(), true
}

func appendRealServer(b []byte, r *RealServerStatus) ([]byte, bool) {
	o := jsonw.Open(b)
	o.String("address", r.Address)
	o.String("forwarding", r.Forwarding)
	o.Int("weight", int64(r.Weight))
	o.Int("kernel_weight", int64(r.KernelWeight))
	o.String("health", r.Health)
	if !o.TimeOmitZero("since", r.Since) {
		return nil, false
	}
	o.StringOmitEmpty("check", r.Check)
	o.StringOmitEmpty("last_result", r.LastResult)
	if !o.TimeOmitZero("last_check", r.LastCheck) {
		return nil, false
	}
	o.StringOmitEmpty("why", r.Why)
	return o.Close(), true
}

// EncodedSpan is a run of consecutive services' JSON joined with
// commas, as they appear inside Status's services list: joined once by
// the daemon and shared by requests while none of them changes, so that
// a request writes a few hundred spans rather than 10,000 services.
type EncodedSpan struct {
	// JSON is the services' encodings joined with commas. It is never
	// modified once made.
	JSON []byte
	// Gen changes whenever JSON does; ETags are made of it.
	Gen uint64
	// Services are the span's services one by one (for Filter): JSON
	// is theirs joined.
	Services []EncodedService
}

// Encoded is a Status whose services are already encoded: what the
// status API serves. Status.Services is ignored; Services stand in for
// it, in order, or, if Spans is set, the spans' services in order (a
// Writer of every service writes the spans' JSON, with no pass over
// each service).
//
// EventsJSON, if set, are Status.Events encoded one by one (EncodeEvent),
// in order, as kept by the timeline that made them: the frame joins them
// rather than encoding a full timeline of a thousand events again per
// request.
type Encoded struct {
	Status     Status
	Services   []EncodedService
	Spans      []EncodedSpan
	EventsJSON [][]byte
}

// EncodeEvent encodes an event for Encoded.EventsJSON: as encoding/json
// encodes it inside Status, byte for byte.
func EncodeEvent(ev Event) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encoding the event %q: %w", ev.Message, err)
	}
	return b, nil
}

// eventsMark is how the empty events list, the last field, ends Status's
// JSON.
var eventsMark = []byte(`"events":[]}`)

// each yields every service, from the spans if e has them.
func (e *Encoded) each(yield func(EncodedService) bool) {
	if e.Spans == nil {
		for _, s := range e.Services {
			if !yield(s) {
				return
			}
		}
		return
	}
	for _, sp := range e.Spans {
		for _, s := range sp.Services {
			if !yield(s) {
				return
			}
		}
	}
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
	joinEvents := e.EventsJSON != nil && len(e.EventsJSON) == len(st.Events)
	if joinEvents {
		st.Events = []Event{}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the status: %w", err)
	}
	if joinEvents {
		if !bytes.HasSuffix(b, eventsMark) {
			return nil, nil, errors.New("encoding the status: the events are not last")
		}
		n := len(b)
		for _, ev := range e.EventsJSON {
			n += len(ev) + 1
		}
		joined := make([]byte, 0, n)
		joined = append(joined, b[:len(b)-2]...) // up to and with "events":[
		for i, ev := range e.EventsJSON {
			if i > 0 {
				joined = append(joined, ',')
			}
			joined = append(joined, ev...)
		}
		b = append(joined, ']', '}')
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
	for s := range e.each {
		if a, ok := keyAddr(s.Key); ok && a == vip {
			kept = append(kept, s)
		}
	}
	e.Services, e.Spans = kept, nil
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

// Part is what of an Encoded status a Writer writes.
type Part int

const (
	// WholeStatus is the Status (GET /status).
	WholeStatus Part = iota
	// ServicesOnly is {"services": [...]} (GET /status/services).
	ServicesOnly
)

// Writer writes an Encoded status: its ETag first, then its JSON.
type Writer struct {
	e             *Encoded
	before, after []byte
}

// NewWriter encodes everything in e but the services (the timeline,
// VRRP, BGP, a few fields), which is cheap next to them.
func NewWriter(e *Encoded) (*Writer, error) { return newWriter(e, WholeStatus) }

func newWriter(e *Encoded, part Part) (*Writer, error) {
	if part == ServicesOnly {
		return &Writer{e: e, before: []byte(`{"services":[`), after: []byte(`]}`)}, nil
	}
	before, after, err := e.frame()
	if err != nil {
		return nil, err
	}
	return &Writer{e: e, before: before, after: after}, nil
}

// etagSeed seeds the ETags' hash: a tag holds for the life of the
// process that made it (a restarted lvsd numbers its encodings anew).
var etagSeed = maphash.MakeSeed()

// ETag is a strong entity tag of the JSON that WriteTo writes: it
// differs whenever a byte would (with the odds of a 64-bit hash), and
// costs no pass over the services' bytes.
func (w *Writer) ETag() string {
	var h maphash.Hash // not fnv: the frame is ~200 KB with a full timeline
	h.SetSeed(etagSeed)
	h.Write(w.before)
	gens := make([]byte, 0, 8*max(len(w.e.Spans), len(w.e.Services)))
	if w.e.Spans != nil {
		for _, s := range w.e.Spans {
			gens = binary.LittleEndian.AppendUint64(gens, s.Gen)
		}
	} else {
		for _, s := range w.e.Services {
			gens = binary.LittleEndian.AppendUint64(gens, s.Gen)
		}
	}
	h.Write(gens)
	h.Write(w.after)
	return fmt.Sprintf(`"%016x"`, h.Sum64())
}

// pieces are the services' JSON as WriteTo writes them, commas between:
// the spans if e has them, else each service's.
func (w *Writer) pieces() func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		if w.e.Spans != nil {
			for _, s := range w.e.Spans {
				if len(s.JSON) > 0 && !yield(s.JSON) {
					return
				}
			}
			return
		}
		for _, s := range w.e.Services {
			if !yield(s.JSON) {
				return
			}
		}
	}
}

// Len is how many bytes WriteTo writes.
func (w *Writer) Len() int {
	n, pieces := len(w.before)+len(w.after)+1, 0
	for p := range w.pieces() {
		if pieces > 0 {
			n++
		}
		n += len(p)
		pieces++
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
	comma, first := []byte{','}, true
	for p := range w.pieces() {
		if !first {
			if err := write(comma); err != nil {
				return n, err
			}
		}
		first = false
		if err := write(p); err != nil {
			return n, err
		}
	}
	if err := write(w.after); err != nil {
		return n, err
	}
	return n, write([]byte{'\n'})
}

// ServeEncoded answers a GET of part of the status from e, for the
// status API's handler, with its ETag:
//
//	GET /status                     the whole status
//	GET /status?vip=ADDR            only the services of ADDR (lvsdiag's view)
//	GET /status/services[?vip=ADDR] {"services": [...]}
//
// A request whose If-None-Match names the current ETag gets 304 and no
// body: a client polling an lvsd that did not change moves no bytes.
func ServeEncoded(w http.ResponseWriter, r *http.Request, e Encoded, part Part) {
	if v := r.URL.Query().Get("vip"); v != "" {
		vip, err := netip.ParseAddr(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("vip=%q: want an IP address like 192.168.0.100 or 2001:db8::100", v)})
			return
		}
		e = e.Filter(vip.Unmap())
	}
	sw, err := newWriter(&e, part)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	tag := sw.ETag()
	h.Set("ETag", tag)
	if noneMatch(r.Header.Get("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(sw.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// A failed write is the client gone, and there is no one left to
	// tell.
	if e.Spans != nil {
		// Spans are about 64 KiB each: written as they are, with no
		// copy through a buffer of ours (net/http writes a piece that
		// large straight to the connection).
		sw.WriteTo(w)
		return
	}
	// 64 KiB writes rather than one per service: the services are
	// about a kilobyte each.
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := sw.WriteTo(bw); err == nil {
		bw.Flush()
	}
}

// noneMatch reports whether an If-None-Match header names tag (or is
// "*"). The status API's tags are strong; a weak W/ form of the same
// tag matches too, as RFC 9110's weak comparison says for this header.
func noneMatch(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == tag {
			return true
		}
	}
	return false
}

// EncodeStatus encodes every service of st: an Encoded for a status
// that is not kept encoded (tests, tools). Each service's Gen is a hash
// of its JSON, so equal statuses get equal ETags.
func EncodeStatus(st Status) (Encoded, error) {
	e := Encoded{Status: st, Services: make([]EncodedService, 0, len(st.Services))}
	for _, s := range st.Services {
		b, err := EncodeService(s)
		if err != nil {
			return Encoded{}, err
		}
		h := fnv.New64a()
		h.Write(b)
		e.Services = append(e.Services, EncodedService{Key: s.Key, JSON: b, Gen: h.Sum64()})
	}
	return e, nil
}
