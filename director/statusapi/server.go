package statusapi

// The status API's server: lvsd's Status as JSON over HTTP, on loopback
// TCP by default or on a unix socket, with the drill actions on the
// socket only. The daemon provides the data (a func returning Status,
// and Drills); this file knows nothing of it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"
)

// Errors of the drill actions that the API maps to its answers.
var (
	// ErrNoDrillTarget: no such VRRP instance, or no such VIP announced
	// over BGP.
	ErrNoDrillTarget = errors.New("no such drill target")
	// ErrDrillRefused: the target exists but cannot be drilled (an
	// address owner, a hold out of range).
	ErrDrillRefused = errors.New("drill refused")
)

// NewStatusHandler serves the status API from status, which returns a
// snapshot and is called once per request; every service is encoded per
// request (lvsd serves Daemon.EncodedStatus with
// NewEncodedStatusHandler, which does not).
func NewStatusHandler(status func() Status) http.Handler {
	return NewEncodedStatusHandler(func() (Encoded, error) { return EncodeStatus(status()) })
}

// NewEncodedStatusHandler serves the status API from status
// (Daemon.EncodedStatus), which is called once per request:
//
//	GET /status                   the whole Status
//	GET /status?vip=ADDR          the whole Status, only ADDR's services
//	GET /status/services          {"services": [...]} (also ?vip=)
//	GET /status/events?since=T    {"events": [...]}, the events after T
//	                              (RFC 3339), oldest first; all without since
//
// The partial answers decode into a Status too. Lists are [] rather
// than null when empty. /status and /status/services carry an ETag and
// answer 304 to an If-None-Match that names it.
func NewEncodedStatusHandler(status func() (Encoded, error)) http.Handler {
	mux := http.NewServeMux()
	encoded := func(w http.ResponseWriter) (Encoded, bool) {
		e, err := status()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
			return e, false
		}
		if e.Status.Events == nil {
			e.Status.Events = []Event{}
		}
		return e, true
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		if e, ok := encoded(w); ok {
			ServeEncoded(w, r, e, WholeStatus)
		}
	})
	mux.HandleFunc("GET /status/services", func(w http.ResponseWriter, r *http.Request) {
		if e, ok := encoded(w); ok {
			ServeEncoded(w, r, e, ServicesOnly)
		}
	})
	mux.HandleFunc("GET /status/events", func(w http.ResponseWriter, r *http.Request) {
		var since time.Time
		if v := r.URL.Query().Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("since=%q: want an RFC 3339 time like 2026-03-01T12:00:03Z", v)})
				return
			}
			since = t
		}
		e, ok := encoded(w)
		if !ok {
			return
		}
		events := []Event{}
		for _, ev := range e.Status.Events {
			if since.IsZero() || ev.Time.After(since) {
				events = append(events, ev)
			}
		}
		writeJSON(w, http.StatusOK, struct {
			Events []Event `json:"events"`
		}{events})
	})
	return mux
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	// The snapshot's types always encode; a failed write is the client
	// gone, and there is no one left to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// Drills are the drill actions the API serves (Daemon implements them).
type Drills interface {
	// StepDown makes a VRRP instance step down for hold.
	StepDown(ctx context.Context, instance string, hold time.Duration) (DrillAction, error)
	// EndStepDown ends a step-down.
	EndStepDown(ctx context.Context, instance string) (DrillAction, error)
	// Withdraw withdraws a VIP's BGP route for hold.
	Withdraw(vip netip.Addr, hold time.Duration) (DrillAction, error)
	// EndWithdraw ends a withdraw.
	EndWithdraw(vip netip.Addr) (DrillAction, error)
}

// NewAPIHandler is the status API (NewEncodedStatusHandler) on a listener of
// network "tcp" or "unix", with the drill actions on a unix socket only:
//
//	POST   /vrrp/{instance}/step-down?hold=30s
//	DELETE /vrrp/{instance}/step-down
//	POST   /bgp/{vip}/withdraw?hold=30s
//	DELETE /bgp/{vip}/withdraw
//
// Whoever may connect to the socket (its mode is SocketMode: lvsd's user
// and group) may drill; on TCP, which anything on the machine (or, with
// a non-loopback status_listen, the network) can reach, the actions
// answer 403 and say how to reach them. drills nil turns them off.
func NewAPIHandler(network string, status func() (Encoded, error), drills Drills) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", NewEncodedStatusHandler(status))
	if drills == nil {
		return mux
	}
	routes := []string{"POST /vrrp/{name}/step-down", "DELETE /vrrp/{name}/step-down", "POST /bgp/{name}/withdraw", "DELETE /bgp/{name}/withdraw"}
	if network != "unix" {
		for _, rt := range routes {
			mux.HandleFunc(rt, func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusForbidden, apiError{"drill actions are served only on lvsd's unix socket, whose file permissions authorise them: set lvsd.status_listen: unix:/run/lvsd/status.sock and use it (from another host: ssh -L /tmp/lvsd.sock:/run/lvsd/status.sock DIRECTOR)"})
			})
		}
		return mux
	}
	handle := func(w http.ResponseWriter, act func() (DrillAction, error)) {
		a, err := act()
		switch {
		case errors.Is(err, ErrNoDrillTarget):
			writeJSON(w, http.StatusNotFound, apiError{err.Error()})
		case errors.Is(err, ErrDrillRefused):
			writeJSON(w, http.StatusConflict, apiError{err.Error()})
		case err != nil:
			writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		default:
			writeJSON(w, http.StatusOK, a)
		}
	}
	hold := func(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
		v := r.URL.Query().Get("hold")
		if v == "" {
			return DefaultDrillHold, true
		}
		h, err := time.ParseDuration(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("hold=%q: want a duration like 30s or 2m", v)})
			return 0, false
		}
		return h, true
	}
	vip := func(w http.ResponseWriter, r *http.Request) (netip.Addr, bool) {
		a, err := netip.ParseAddr(r.PathValue("name"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("vip %q: want an IP address like 192.0.2.10", r.PathValue("name"))})
			return netip.Addr{}, false
		}
		return a, true
	}
	mux.HandleFunc(routes[0], func(w http.ResponseWriter, r *http.Request) {
		if h, ok := hold(w, r); ok {
			handle(w, func() (DrillAction, error) { return drills.StepDown(r.Context(), r.PathValue("name"), h) })
		}
	})
	mux.HandleFunc(routes[1], func(w http.ResponseWriter, r *http.Request) {
		handle(w, func() (DrillAction, error) { return drills.EndStepDown(r.Context(), r.PathValue("name")) })
	})
	mux.HandleFunc(routes[2], func(w http.ResponseWriter, r *http.Request) {
		h, ok := hold(w, r)
		if !ok {
			return
		}
		if a, ok := vip(w, r); ok {
			handle(w, func() (DrillAction, error) { return drills.Withdraw(a, h) })
		}
	})
	mux.HandleFunc(routes[3], func(w http.ResponseWriter, r *http.Request) {
		if a, ok := vip(w, r); ok {
			handle(w, func() (DrillAction, error) { return drills.EndWithdraw(a) })
		}
	})
	return mux
}
