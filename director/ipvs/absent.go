package ipvs

// Absent returns a Client for a kernel without IPVS, for a director that
// runs VRRP only (a config with no virtual services and no IPVS
// settings): it reads as an empty table with no sync daemons, and every
// write, Info and Timeouts fail with err, which should wrap
// ErrIPVSUnavailable, so a reload that adds a virtual service reports
// why it cannot be installed instead of being silently dropped.
func Absent(err error) Client { return absentClient{err} }

type absentClient struct{ err error }

func (a absentClient) Info() (Info, error)          { return Info{}, a.err }
func (a absentClient) Services() ([]Service, error) { return nil, nil }
func (a absentClient) ServiceTable() (ServiceTable, error) {
	return ServiceTable{}, nil // an empty table, as Services
}
func (a absentClient) Service(ServiceKey) (Service, error) {
	return Service{}, ErrServiceNotFound
}
func (a absentClient) AddService(Service) error       { return a.err }
func (a absentClient) UpdateService(Service) error    { return a.err }
func (a absentClient) DeleteService(ServiceKey) error { return a.err }
func (a absentClient) RealServers(ServiceKey) ([]RealServer, error) {
	return nil, ErrServiceNotFound
}
func (a absentClient) AddRealServer(ServiceKey, RealServer) error       { return a.err }
func (a absentClient) UpdateRealServer(ServiceKey, RealServer) error    { return a.err }
func (a absentClient) DeleteRealServer(ServiceKey, RealServerKey) error { return a.err }
func (a absentClient) Timeouts() (Timeouts, error)                      { return Timeouts{}, a.err }
func (a absentClient) SetTimeouts(Timeouts) error                       { return a.err }
func (a absentClient) SyncDaemons() ([]SyncDaemon, error)               { return nil, nil }
func (a absentClient) StartSyncDaemon(SyncDaemon) error                 { return a.err }
func (a absentClient) StopSyncDaemon(SyncRole) error                    { return a.err }
func (a absentClient) ZeroService(ServiceKey) error                     { return a.err }
func (a absentClient) ZeroAll() error                                   { return a.err }
func (a absentClient) Flush() error                                     { return a.err }
func (a absentClient) Close() error                                     { return nil }
