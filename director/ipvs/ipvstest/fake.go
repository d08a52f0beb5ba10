// Package ipvstest has a stateful fake of ipvs.Client for the tests of
// everything built on it. The fake keeps services and real servers like the
// kernel does, answers with the same sentinel errors, and records every
// call so a test can assert exactly which operations were sent.
package ipvstest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	"github.com/lvskit/lvskit/director/ipvs"
)

// Op names a Client method.
type Op string

// The operations the fake records.
const (
	OpInfo             Op = "Info"
	OpServices         Op = "Services"
	OpServiceTable     Op = "ServiceTable" // a read of /proc/net/ip_vs
	OpService          Op = "Service"
	OpAddService       Op = "AddService"
	OpUpdateService    Op = "UpdateService"
	OpDeleteService    Op = "DeleteService"
	OpRealServers      Op = "RealServers"
	OpAddRealServer    Op = "AddRealServer"
	OpUpdateRealServer Op = "UpdateRealServer"
	OpDeleteRealServer Op = "DeleteRealServer"
	OpTimeouts         Op = "Timeouts"
	OpSetTimeouts      Op = "SetTimeouts"
	OpSyncDaemons      Op = "SyncDaemons"
	OpStartSyncDaemon  Op = "StartSyncDaemon"
	OpStopSyncDaemon   Op = "StopSyncDaemon"
	OpZeroService      Op = "ZeroService"
	OpZeroAll          Op = "ZeroAll"
	OpFlush            Op = "Flush"
)

// IsWrite reports whether the operation changes kernel state.
func (o Op) IsWrite() bool {
	switch o {
	case OpInfo, OpServices, OpServiceTable, OpService, OpRealServers, OpTimeouts, OpSyncDaemons:
		return false
	}
	return true
}

// Call is one recorded call with its arguments.
type Call struct {
	Op         Op
	Service    ipvs.Service    // the service, or only its key
	RealServer ipvs.RealServer // the real server, or only its address and port
	Timeouts   ipvs.Timeouts
	Daemon     ipvs.SyncDaemon
}

// String renders a call for test failure messages, e.g.
// "AddRealServer TCP 192.168.0.100:80 -> 10.0.0.2:80 Route w=1".
func (c Call) String() string {
	switch c.Op {
	case OpAddService, OpUpdateService:
		return fmt.Sprintf("%s %v %s", c.Op, c.Service.ServiceKey, c.Service.Scheduler)
	case OpDeleteService, OpService, OpRealServers, OpZeroService:
		return fmt.Sprintf("%s %v", c.Op, c.Service.ServiceKey)
	case OpAddRealServer, OpUpdateRealServer:
		return fmt.Sprintf("%s %v -> %v %v w=%d", c.Op, c.Service.ServiceKey, c.RealServer.Key(), c.RealServer.Forwarding, c.RealServer.Weight)
	case OpDeleteRealServer:
		return fmt.Sprintf("%s %v -> %v", c.Op, c.Service.ServiceKey, c.RealServer.Key())
	case OpStartSyncDaemon:
		return fmt.Sprintf("%s %v %s %d", c.Op, c.Daemon.Role, c.Daemon.Interface, c.Daemon.SyncID)
	case OpStopSyncDaemon:
		return fmt.Sprintf("%s %v", c.Op, c.Daemon.Role)
	}
	return string(c.Op)
}

type service struct {
	svc  ipvs.Service
	dsts []ipvs.RealServer
}

// Fake is a stateful, concurrency-safe ipvs.Client.
type Fake struct {
	// Hook, when set, is called before each call is applied; a non-nil
	// error fails the call unapplied, as a kernel error would.
	Hook func(Call) error

	mu         sync.Mutex
	services   map[ipvs.ServiceKey]*service
	order      []ipvs.ServiceKey
	calls      []Call
	info       ipvs.Info
	timeouts   ipvs.Timeouts
	daemons    []ipvs.SyncDaemon
	schedulers map[string]bool
	closed     bool
}

var _ ipvs.Client = (*Fake)(nil)

// New returns an empty fake with the kernel's defaults: IPVS 1.2.1, a
// 4096-entry connection table, timeouts 900/120/300 and every scheduler.
func New() *Fake {
	f := &Fake{
		services:   map[ipvs.ServiceKey]*service{},
		info:       ipvs.Info{Version: 0x010201, ConnTableSize: 4096},
		timeouts:   ipvs.Timeouts{TCP: 900, TCPFin: 120, UDP: 300},
		schedulers: map[string]bool{},
	}
	for _, s := range ipvs.Schedulers {
		f.schedulers[s] = true
	}
	return f
}

// SetSchedulers limits the schedulers the fake kernel can load.
func (f *Fake) SetSchedulers(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.schedulers = map[string]bool{}
	for _, n := range names {
		f.schedulers[n] = true
	}
}

// Calls returns every call recorded so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Writes returns the recorded calls that change state.
func (f *Fake) Writes() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if c.Op.IsWrite() {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the recorded calls and keeps the state.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// SetCounters sets what the kernel would report for a real server: its
// connection counts and stats. It is not recorded as a call.
func (f *Fake) SetCounters(key ipvs.ServiceKey, rk ipvs.RealServerKey, active, inactive uint32, st ipvs.Stats) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.services[key]
	if !ok {
		return ipvs.ErrServiceNotFound
	}
	i := s.find(rk)
	if i < 0 {
		return ipvs.ErrRealServerNotFound
	}
	s.dsts[i].ActiveConns, s.dsts[i].InactiveConns, s.dsts[i].Stats = active, inactive, st
	return nil
}

// record appends the call and asks the hook; callers hold f.mu.
func (f *Fake) record(c Call) error {
	if f.closed {
		return fmt.Errorf("%s on a closed client", c.Op)
	}
	f.calls = append(f.calls, c)
	if f.Hook != nil {
		return f.Hook(c)
	}
	return nil
}

func (s *service) find(k ipvs.RealServerKey) int {
	return slices.IndexFunc(s.dsts, func(d ipvs.RealServer) bool { return d.Key() == k })
}

// normalize stores a service as the kernel reports it back.
func normalize(s ipvs.Service) ipvs.Service {
	s.Flags &^= ipvs.FlagHashed
	full := uint8(32)
	if s.Family == ipvs.IPv6 {
		full = 128
	}
	if s.NetmaskBits == 0 || s.NetmaskBits > full {
		s.NetmaskBits = full
	}
	if s.IsFWMark() {
		s.Protocol, s.Address, s.Port = 0, ipvs.ServiceKey{}.Address, 0
	}
	s.Stats = ipvs.Stats{}
	return s
}

func (f *Fake) Info() (ipvs.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpInfo}); err != nil {
		return ipvs.Info{}, err
	}
	return f.info, nil
}

func (f *Fake) Services() ([]ipvs.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpServices}); err != nil {
		return nil, err
	}
	out := make([]ipvs.Service, 0, len(f.order))
	for _, k := range f.order {
		out = append(out, f.services[k].svc)
	}
	return out, nil
}

func (f *Fake) Service(key ipvs.ServiceKey) (ipvs.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpService, Service: ipvs.Service{ServiceKey: key}}); err != nil {
		return ipvs.Service{}, err
	}
	s, ok := f.services[key]
	if !ok {
		return ipvs.Service{}, fmt.Errorf("reading virtual service %v: %w", key, ipvs.ErrServiceNotFound)
	}
	return s.svc, nil
}

func (f *Fake) checkScheduler(s ipvs.Service) error {
	if !f.schedulers[s.Scheduler] {
		return fmt.Errorf("%w: scheduler %q (load ip_vs_%s)", ipvs.ErrNotSupported, s.Scheduler, s.Scheduler)
	}
	return nil
}

func (f *Fake) AddService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpAddService, Service: s}); err != nil {
		return err
	}
	if _, ok := f.services[s.ServiceKey]; ok {
		return fmt.Errorf("adding virtual service %v: %w", s.ServiceKey, ipvs.ErrServiceExists)
	}
	if err := f.checkScheduler(s); err != nil {
		return fmt.Errorf("adding virtual service %v: %w", s.ServiceKey, err)
	}
	f.services[s.ServiceKey] = &service{svc: normalize(s)}
	f.order = append(f.order, s.ServiceKey)
	return nil
}

func (f *Fake) UpdateService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpUpdateService, Service: s}); err != nil {
		return err
	}
	cur, ok := f.services[s.ServiceKey]
	if !ok {
		return fmt.Errorf("updating virtual service %v: %w", s.ServiceKey, ipvs.ErrServiceNotFound)
	}
	if err := f.checkScheduler(s); err != nil {
		return fmt.Errorf("updating virtual service %v: %w", s.ServiceKey, err)
	}
	st := cur.svc.Stats
	cur.svc = normalize(s)
	cur.svc.Stats = st
	return nil
}

func (f *Fake) DeleteService(key ipvs.ServiceKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpDeleteService, Service: ipvs.Service{ServiceKey: key}}); err != nil {
		return err
	}
	if _, ok := f.services[key]; !ok {
		return fmt.Errorf("deleting virtual service %v: %w", key, ipvs.ErrServiceNotFound)
	}
	delete(f.services, key)
	f.order = slices.DeleteFunc(f.order, func(k ipvs.ServiceKey) bool { return k == key })
	return nil
}

func (f *Fake) RealServers(key ipvs.ServiceKey) ([]ipvs.RealServer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpRealServers, Service: ipvs.Service{ServiceKey: key}}); err != nil {
		return nil, err
	}
	s, ok := f.services[key]
	if !ok {
		return nil, fmt.Errorf("listing real servers of %v: %w", key, ipvs.ErrServiceNotFound)
	}
	return slices.Clone(s.dsts), nil
}

func (f *Fake) AddRealServer(key ipvs.ServiceKey, r ipvs.RealServer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpAddRealServer, Service: ipvs.Service{ServiceKey: key}, RealServer: r}); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("adding real server to %v: %w", key, err)
	}
	s, ok := f.services[key]
	if !ok {
		return fmt.Errorf("adding real server %v to %v: %w", r.Key(), key, ipvs.ErrServiceNotFound)
	}
	if s.find(r.Key()) >= 0 {
		return fmt.Errorf("adding real server %v to %v: %w", r.Key(), key, ipvs.ErrRealServerExists)
	}
	r.ActiveConns, r.InactiveConns, r.PersistentConns, r.Stats = 0, 0, 0, ipvs.Stats{}
	s.dsts = append(s.dsts, r)
	return nil
}

func (f *Fake) UpdateRealServer(key ipvs.ServiceKey, r ipvs.RealServer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpUpdateRealServer, Service: ipvs.Service{ServiceKey: key}, RealServer: r}); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("updating real server of %v: %w", key, err)
	}
	s, ok := f.services[key]
	if !ok {
		return fmt.Errorf("updating real server %v of %v: %w", r.Key(), key, ipvs.ErrServiceNotFound)
	}
	i := s.find(r.Key())
	if i < 0 {
		return fmt.Errorf("updating real server %v of %v: %w", r.Key(), key, ipvs.ErrRealServerNotFound)
	}
	cur := s.dsts[i]
	r.ActiveConns, r.InactiveConns, r.PersistentConns, r.Stats = cur.ActiveConns, cur.InactiveConns, cur.PersistentConns, cur.Stats
	s.dsts[i] = r
	return nil
}

func (f *Fake) DeleteRealServer(key ipvs.ServiceKey, rk ipvs.RealServerKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpDeleteRealServer, Service: ipvs.Service{ServiceKey: key}, RealServer: ipvs.RealServer{Address: rk.Address, Port: rk.Port}}); err != nil {
		return err
	}
	s, ok := f.services[key]
	if !ok {
		return fmt.Errorf("deleting real server %v from %v: %w", rk, key, ipvs.ErrServiceNotFound)
	}
	i := s.find(rk)
	if i < 0 {
		return fmt.Errorf("deleting real server %v from %v: %w", rk, key, ipvs.ErrRealServerNotFound)
	}
	s.dsts = slices.Delete(s.dsts, i, i+1)
	return nil
}

func (f *Fake) Timeouts() (ipvs.Timeouts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpTimeouts}); err != nil {
		return ipvs.Timeouts{}, err
	}
	return f.timeouts, nil
}

func (f *Fake) SetTimeouts(t ipvs.Timeouts) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpSetTimeouts, Timeouts: t}); err != nil {
		return err
	}
	if t.TCP != 0 {
		f.timeouts.TCP = t.TCP
	}
	if t.TCPFin != 0 {
		f.timeouts.TCPFin = t.TCPFin
	}
	if t.UDP != 0 {
		f.timeouts.UDP = t.UDP
	}
	return nil
}

func (f *Fake) SyncDaemons() ([]ipvs.SyncDaemon, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpSyncDaemons}); err != nil {
		return nil, err
	}
	return slices.Clone(f.daemons), nil
}

func (f *Fake) StartSyncDaemon(d ipvs.SyncDaemon) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpStartSyncDaemon, Daemon: d}); err != nil {
		return err
	}
	if slices.ContainsFunc(f.daemons, func(x ipvs.SyncDaemon) bool { return x.Role == d.Role }) {
		return fmt.Errorf("starting %v sync daemon on %s syncid %d: already running", d.Role, d.Interface, d.SyncID)
	}
	f.daemons = append(f.daemons, d)
	return nil
}

func (f *Fake) StopSyncDaemon(role ipvs.SyncRole) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpStopSyncDaemon, Daemon: ipvs.SyncDaemon{Role: role}}); err != nil {
		return err
	}
	n := len(f.daemons)
	f.daemons = slices.DeleteFunc(f.daemons, func(x ipvs.SyncDaemon) bool { return x.Role == role })
	if len(f.daemons) == n {
		return fmt.Errorf("stopping %v sync daemon: not running", role)
	}
	return nil
}

func (f *Fake) ZeroService(key ipvs.ServiceKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpZeroService, Service: ipvs.Service{ServiceKey: key}}); err != nil {
		return err
	}
	s, ok := f.services[key]
	if !ok {
		return fmt.Errorf("zeroing counters of %v: %w", key, ipvs.ErrServiceNotFound)
	}
	s.zero()
	return nil
}

func (s *service) zero() {
	s.svc.Stats = ipvs.Stats{}
	for i := range s.dsts {
		s.dsts[i].Stats = ipvs.Stats{}
	}
}

func (f *Fake) ZeroAll() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpZeroAll}); err != nil {
		return err
	}
	for _, s := range f.services {
		s.zero()
	}
	return nil
}

func (f *Fake) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpFlush}); err != nil {
		return err
	}
	f.services = map[ipvs.ServiceKey]*service{}
	f.order = nil
	return nil
}

// Close marks the fake closed; later calls fail.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// ServiceTable renders the fake's table as the kernel prints
// /proc/net/ip_vs and parses it back, so what a caller gets has exactly
// the detail (and the loss of detail) of the real file.
func (f *Fake) ServiceTable() (ipvs.ServiceTable, error) {
	f.mu.Lock()
	if err := f.record(Call{Op: OpServiceTable}); err != nil {
		f.mu.Unlock()
		return ipvs.ServiceTable{}, err
	}
	t := ipvs.ServiceTable{Info: f.info}
	for _, k := range f.order {
		s := f.services[k]
		t.Services = append(t.Services, ipvs.ServiceEntry{Service: s.svc, RealServers: slices.Clone(s.dsts)})
	}
	f.mu.Unlock()
	var b bytes.Buffer
	if err := ipvs.WriteServiceTable(&b, t); err != nil {
		return ipvs.ServiceTable{}, err
	}
	return ipvs.ParseServiceTable(&b)
}
