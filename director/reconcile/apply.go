package reconcile

import (
	"errors"
	"fmt"
	"slices"

	"github.com/lvskit/lvskit/director/ipvs"
)

// Failure is an op the kernel refused.
type Failure struct {
	Op  Op
	Err error
}

func (f Failure) Error() string { return fmt.Sprintf("%v: %v", f.Op, f.Err) }

// ErrSkipped marks real-server ops not sent because their service could
// not be added.
var ErrSkipped = errors.New("skipped: the service could not be added")

// Apply sends ops in order through c. A failed op does not stop the
// others; only the real-server ops of a service whose AddService failed
// are skipped, since the kernel would refuse each of them. Every op that
// succeeds is recorded in cache, which so stays a true copy of the kernel
// without reading it back.
func Apply(c ipvs.Client, ops []Op, cache Table) []Failure {
	var (
		failures []Failure
		failed   map[ipvs.ServiceKey]bool
	)
	for _, op := range ops {
		k := op.Service.ServiceKey
		if failed[k] && op.Kind != AddService {
			failures = append(failures, Failure{Op: op, Err: ErrSkipped})
			continue
		}
		if err := send(c, op); err != nil {
			failures = append(failures, Failure{Op: op, Err: err})
			if op.Kind == AddService {
				if failed == nil {
					failed = map[ipvs.ServiceKey]bool{}
				}
				failed[k] = true
			}
			continue
		}
		record(cache, op)
	}
	return failures
}

func send(c ipvs.Client, op Op) error {
	k := op.Service.ServiceKey
	switch op.Kind {
	case AddService:
		return c.AddService(op.Service)
	case UpdateService:
		return c.UpdateService(op.Service)
	case DeleteService:
		return c.DeleteService(k)
	case AddRealServer:
		return c.AddRealServer(k, op.RealServer)
	case UpdateRealServer:
		return c.UpdateRealServer(k, op.RealServer)
	case DeleteRealServer:
		return c.DeleteRealServer(k, op.RealServer.Key())
	}
	return fmt.Errorf("unknown op kind %v", op.Kind)
}

// record applies a successful op to the cache.
func record(cache Table, op Op) {
	k := op.Service.ServiceKey
	e := cache[k]
	switch op.Kind {
	case AddService:
		cache[k] = &Entry{Service: op.Service}
	case UpdateService:
		if e != nil {
			e.Service = op.Service
		}
	case DeleteService:
		delete(cache, k)
	case AddRealServer, UpdateRealServer:
		if e == nil {
			return
		}
		i := slices.IndexFunc(e.RealServers, func(r ipvs.RealServer) bool { return r.Key() == op.RealServer.Key() })
		if i < 0 {
			e.RealServers = append(e.RealServers, op.RealServer)
		} else {
			e.RealServers[i] = op.RealServer
		}
	case DeleteRealServer:
		if e != nil {
			e.RealServers = slices.DeleteFunc(e.RealServers, func(r ipvs.RealServer) bool { return r.Key() == op.RealServer.Key() })
		}
	}
}

// ReadTable reads every service and its real servers from the kernel.
func ReadTable(c ipvs.Client) (Table, error) {
	svcs, err := c.Services()
	if err != nil {
		return nil, err
	}
	t := make(Table, len(svcs))
	for _, s := range svcs {
		rss, err := c.RealServers(s.ServiceKey)
		if errors.Is(err, ipvs.ErrServiceNotFound) {
			continue // deleted between the two reads
		}
		if err != nil {
			return nil, err
		}
		t[s.ServiceKey] = &Entry{Service: s, RealServers: rss}
	}
	return t, nil
}

// readEntry reads one service from the kernel; nil when it is not there.
func readEntry(c ipvs.Client, k ipvs.ServiceKey) (*Entry, error) {
	s, err := c.Service(k)
	if errors.Is(err, ipvs.ErrServiceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rss, err := c.RealServers(k)
	if errors.Is(err, ipvs.ErrServiceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Entry{Service: s, RealServers: rss}, nil
}
