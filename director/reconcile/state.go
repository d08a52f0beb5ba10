package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/lvskit/lvskit/director/ipvs"
)

// StateFileName is the last-applied state file inside the state directory.
const StateFileName = "owned.json"

// stateFile is what lvsd remembers across restarts: the services it owns,
// so that a service removed from the config is removed from the kernel
// even if lvsd was down when it was removed, while rules lvsd never wrote
// are left alone.
type stateFile struct {
	Version  int          `json:"version"`
	Services []stateEntry `json:"services"`
}

type stateEntry struct {
	Family   string     `json:"family"`
	Protocol string     `json:"protocol,omitempty"`
	Address  netip.Addr `json:"address,omitzero"`
	Port     uint16     `json:"port,omitempty"`
	FWMark   uint32     `json:"fwmark,omitempty"`
}

func toStateEntry(k ipvs.ServiceKey) stateEntry {
	e := stateEntry{Family: k.Family.String(), Address: k.Address, Port: k.Port, FWMark: k.FWMark}
	if !k.IsFWMark() {
		e.Protocol = k.Protocol.String()
	}
	return e
}

func (e stateEntry) key() (ipvs.ServiceKey, error) {
	var k ipvs.ServiceKey
	switch e.Family {
	case "IPv4":
		k.Family = ipvs.IPv4
	case "IPv6":
		k.Family = ipvs.IPv6
	default:
		return k, fmt.Errorf("unknown family %q", e.Family)
	}
	if e.FWMark != 0 {
		k.FWMark = e.FWMark
		return k, nil
	}
	p, err := ipvs.ParseProtocol(e.Protocol)
	if err != nil {
		return k, err
	}
	if !e.Address.IsValid() {
		return k, errors.New("service without an address")
	}
	k.Protocol, k.Address, k.Port = p, e.Address, e.Port
	return k, nil
}

// LoadOwned reads the set of owned services from dir. A missing file is an
// empty set: lvsd then owns only what its config names.
func LoadOwned(dir string) (map[ipvs.ServiceKey]bool, error) {
	path := filepath.Join(dir, StateFileName)
	f, err := openNoFollow(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return map[ipvs.ServiceKey]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", path, err)
	}
	defer f.Close()
	var st stateFile
	if err := json.NewDecoder(f).Decode(&st); err != nil {
		return nil, fmt.Errorf("reading state file %s: %w (remove it to let lvsd own only what its config names)", path, err)
	}
	owned := make(map[ipvs.ServiceKey]bool, len(st.Services))
	for i, e := range st.Services {
		k, err := e.key()
		if err != nil {
			return nil, fmt.Errorf("reading state file %s: service %d: %w", path, i, err)
		}
		owned[k] = true
	}
	return owned, nil
}

// SaveOwned writes the set of owned services to dir atomically: a new file
// created exclusively with mode 0600 next to the old one, synced, then
// renamed over it, and the directory synced. Neither the directory's last element nor the file is
// followed if it is a symlink.
func SaveOwned(dir string, owned map[ipvs.ServiceKey]bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	if fi, err := os.Lstat(dir); err != nil {
		return fmt.Errorf("checking state directory %s: %w", dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory (a symlink?): refusing to write through it", dir)
	}
	keys := make([]ipvs.ServiceKey, 0, len(owned))
	for k, ok := range owned {
		if ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, CompareKeys)
	st := stateFile{Version: 1, Services: make([]stateEntry, 0, len(keys))}
	for _, k := range keys {
		st.Services = append(st.Services, toStateEntry(k))
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, StateFileName)
	tmp := path + ".new"
	os.Remove(tmp) // a leftover from a crash; Remove does not follow links
	f, err := openNoFollow(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing state file %s: %w", tmp, err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing state file %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing state file %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing state file %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing state file %s: %w", path, err)
	}
	// The rename is durable only once the directory is: without this a
	// crash can bring back the old file (or none) after a new one was
	// reported saved.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("syncing state directory %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
