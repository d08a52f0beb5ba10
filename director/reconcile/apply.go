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
		index    cacheIndex
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
		index = record(cache, index, op)
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

// cacheIndex finds the cache's real servers by key, per service: the
// position of each in its entry's RealServers. A service's index is made
// the first time an op of one Apply touches one of its real servers, so
// that a plan of k ops on a service of n real servers (a batch of health
// transitions) costs O(n + k) rather than O(n·k).
type cacheIndex map[ipvs.ServiceKey]map[ipvs.RealServerKey]int

// of returns e's index, k's entry in the cache, making it if need be.
func (x cacheIndex) of(k ipvs.ServiceKey, e *Entry) map[ipvs.RealServerKey]int {
	m := x[k]
	if m == nil {
		m = make(map[ipvs.RealServerKey]int, len(e.RealServers))
		for i, r := range e.RealServers {
			m[r.Key()] = i
		}
		x[k] = m
	}
	return m
}

// record applies a successful op to the cache, keeping index (made when
// first needed, and returned) true to it.
func record(cache Table, index cacheIndex, op Op) cacheIndex {
	k := op.Service.ServiceKey
	e := cache[k]
	switch op.Kind {
	case AddService:
		cache[k] = &Entry{Service: op.Service}
		delete(index, k)
	case UpdateService:
		if e != nil {
			e.Service = op.Service
		}
	case DeleteService:
		delete(cache, k)
		delete(index, k)
	case AddRealServer, UpdateRealServer:
		if e == nil {
			return index
		}
		if index == nil {
			index = cacheIndex{}
		}
		m, rk := index.of(k, e), op.RealServer.Key()
		if i, ok := m[rk]; ok {
			e.RealServers[i] = op.RealServer
		} else {
			m[rk] = len(e.RealServers)
			e.RealServers = append(e.RealServers, op.RealServer)
		}
	case DeleteRealServer:
		if e == nil {
			return index
		}
		if index == nil {
			index = cacheIndex{}
		}
		m, rk := index.of(k, e), op.RealServer.Key()
		i, ok := m[rk]
		if !ok {
			return index
		}
		// The others keep their order: the ones after i move down.
		e.RealServers = slices.Delete(e.RealServers, i, i+1)
		delete(m, rk)
		for j := i; j < len(e.RealServers); j++ {
			m[e.RealServers[j].Key()] = j
		}
	}
	return index
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
