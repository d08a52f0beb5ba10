// Package reconcile keeps the kernel's IPVS table equal to the one lvsd
// wants, for the services lvsd owns: Expand turns a configured service
// and its real servers' health into an Entry (config.Config.Desired, in
// director/config, is the other half: it resolves the config into one
// DesiredService per IPVS key); Diff computes the ordered operations
// between two tables; Apply sends them through an ipvs.Client; the
// Reconciler ties them to a cache of the kernel, so that a change to one
// real server costs one write, not a read of the whole kernel table, and
// repairs drift by a periodic Resync. Ownership is remembered across
// restarts in a state file (LoadOwned, SaveOwned), written with tight
// modes and never through a symlink; Reconciler.Plan is the dry run
// behind `lvsd plan`.
//
// It knows nothing of the daemon, health checks or VRRP: director wires
// it to them.
package reconcile

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/lvskit/lvskit/director/ipvs"
)

// Entry is one virtual service with its real servers, as lvsd wants it or
// as the kernel has it.
type Entry struct {
	Service     ipvs.Service
	RealServers []ipvs.RealServer
}

// Table is a set of virtual services by key.
type Table map[ipvs.ServiceKey]*Entry

// Keys returns the table's keys in ServiceKey.Less order.
func (t Table) Keys() []ipvs.ServiceKey {
	keys := slices.Collect(maps.Keys(t))
	slices.SortFunc(keys, CompareKeys)
	return keys
}

// CompareKeys orders service keys as ServiceKey.Less does, for
// slices.SortFunc.
func CompareKeys(a, b ipvs.ServiceKey) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

func compareRealServers(a, b ipvs.RealServer) int {
	if c := a.Address.Compare(b.Address); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// Clone returns a deep copy.
func (t Table) Clone() Table {
	out := make(Table, len(t))
	for k, e := range t {
		out[k] = &Entry{Service: e.Service, RealServers: slices.Clone(e.RealServers)}
	}
	return out
}

// OpKind is the kind of a kernel write.
type OpKind uint8

// The writes the reconciler sends.
const (
	AddService OpKind = iota + 1
	UpdateService
	DeleteService
	AddRealServer
	UpdateRealServer
	DeleteRealServer
)

func (k OpKind) String() string {
	switch k {
	case AddService:
		return "add-service"
	case UpdateService:
		return "update-service"
	case DeleteService:
		return "delete-service"
	case AddRealServer:
		return "add-real-server"
	case UpdateRealServer:
		return "update-real-server"
	case DeleteRealServer:
		return "delete-real-server"
	}
	return fmt.Sprintf("op%d", uint8(k))
}

// Op is one kernel write.
type Op struct {
	Kind       OpKind
	Service    ipvs.Service    // the whole service, or its key for real-server ops
	RealServer ipvs.RealServer // for real-server ops
}

// String renders an op the way `lvsd plan` prints it.
func (o Op) String() string {
	k := o.Service.ServiceKey
	switch o.Kind {
	case AddService, UpdateService:
		s := fmt.Sprintf("%-18s %v scheduler %s", o.Kind, k, o.Service.Scheduler)
		if o.Service.Persistent() {
			s += fmt.Sprintf(" persistent %ds mask /%d", o.Service.Timeout, o.Service.NetmaskBits)
		}
		return s
	case DeleteService:
		return fmt.Sprintf("%-18s %v", o.Kind, k)
	case AddRealServer, UpdateRealServer:
		r := o.RealServer
		return fmt.Sprintf("%-18s %v -> %v %v weight %d", o.Kind, k, r.Key(), r.Forwarding, r.Weight)
	case DeleteRealServer:
		return fmt.Sprintf("%-18s %v -> %v", o.Kind, k, o.RealServer.Key())
	}
	return o.Kind.String()
}

// Plan is the result of a diff.
type Plan struct {
	// Ops are the writes, in the order they must be sent.
	Ops []Op
	// Unowned are services in the kernel that lvsd does not own and
	// leaves alone.
	Unowned []ipvs.ServiceKey
}

// Diff computes the writes that turn actual into desired for the services
// lvsd owns: those desired, and those in owned (the last-applied state).
// Services in actual that are in neither are reported as unowned and never
// touched.
//
// Order: additions and edits first, each service before its real servers
// (new real servers before old ones go, so a service is never left
// empty); then removals, real servers before their service.
func Diff(desired, actual Table, owned map[ipvs.ServiceKey]bool) Plan {
	var plan Plan
	var removals []Op
	for _, k := range desired.Keys() {
		plan.Ops = appendServiceDiff(plan.Ops, desired[k], actual[k])
	}
	for _, k := range actual.Keys() {
		if desired[k] != nil {
			continue
		}
		if !owned[k] {
			plan.Unowned = append(plan.Unowned, k)
			continue
		}
		removals = appendServiceDiff(removals, nil, actual[k])
	}
	plan.Ops = append(plan.Ops, removals...)
	return plan
}

// DiffService computes the writes for one service: want or have may be nil.
func DiffService(want, have *Entry) []Op { return appendServiceDiff(nil, want, have) }

func appendServiceDiff(ops []Op, want, have *Entry) []Op {
	switch {
	case want == nil && have == nil:
		return ops
	case want == nil:
		for _, r := range sortedRealServers(have.RealServers) {
			ops = append(ops, Op{Kind: DeleteRealServer, Service: keyOnly(have.Service), RealServer: keyOnlyRS(r)})
		}
		return append(ops, Op{Kind: DeleteService, Service: keyOnly(have.Service)})
	case have == nil:
		ops = append(ops, Op{Kind: AddService, Service: want.Service})
		for _, r := range sortedRealServers(want.RealServers) {
			ops = append(ops, Op{Kind: AddRealServer, Service: keyOnly(want.Service), RealServer: r})
		}
		return ops
	}
	if !sameService(want.Service, have.Service) {
		ops = append(ops, Op{Kind: UpdateService, Service: want.Service})
	}
	haveRS := make(map[ipvs.RealServerKey]ipvs.RealServer, len(have.RealServers))
	for _, r := range have.RealServers {
		haveRS[r.Key()] = r
	}
	wantKeys := make(map[ipvs.RealServerKey]bool, len(want.RealServers))
	for _, r := range sortedRealServers(want.RealServers) {
		wantKeys[r.Key()] = true
		cur, ok := haveRS[r.Key()]
		switch {
		case !ok:
			ops = append(ops, Op{Kind: AddRealServer, Service: keyOnly(want.Service), RealServer: r})
		case !sameRealServer(r, cur):
			ops = append(ops, Op{Kind: UpdateRealServer, Service: keyOnly(want.Service), RealServer: r})
		}
	}
	for _, r := range sortedRealServers(have.RealServers) {
		if !wantKeys[r.Key()] {
			ops = append(ops, Op{Kind: DeleteRealServer, Service: keyOnly(want.Service), RealServer: keyOnlyRS(r)})
		}
	}
	return ops
}

func sortedRealServers(rs []ipvs.RealServer) []ipvs.RealServer {
	if slices.IsSortedFunc(rs, compareRealServers) {
		return rs
	}
	return slices.SortedFunc(slices.Values(rs), compareRealServers)
}

func keyOnly(s ipvs.Service) ipvs.Service { return ipvs.Service{ServiceKey: s.ServiceKey} }
func keyOnlyRS(r ipvs.RealServer) ipvs.RealServer {
	return ipvs.RealServer{Address: r.Address, Port: r.Port}
}

// sameService compares what lvsd sets on a service; counters are ignored.
func sameService(a, b ipvs.Service) bool {
	return a.ServiceKey == b.ServiceKey && a.Scheduler == b.Scheduler &&
		a.Flags&^ipvs.FlagHashed == b.Flags&^ipvs.FlagHashed &&
		a.Timeout == b.Timeout && a.NetmaskBits == b.NetmaskBits &&
		a.PersistenceEngine == b.PersistenceEngine
}

// sameRealServer compares what lvsd sets on a real server; connection
// counts and counters are ignored.
func sameRealServer(a, b ipvs.RealServer) bool {
	return a.Key() == b.Key() && a.Forwarding == b.Forwarding && a.Weight == b.Weight &&
		a.UpperThreshold == b.UpperThreshold && a.LowerThreshold == b.LowerThreshold &&
		a.TunnelType == b.TunnelType && a.TunnelPort == b.TunnelPort && a.TunnelFlags == b.TunnelFlags
}
