package config

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lvskit/lvskit/director/ipvs"
)

// Capabilities is what the running kernel offers, for the checks a config
// file cannot settle alone. A nil list means "unknown": not checked.
type Capabilities struct {
	// Schedulers are the IPVS schedulers available, built in or as
	// modules (see KernelSchedulers).
	Schedulers []string
	// PersistenceEngines are the persistence engines available ("sip").
	PersistenceEngines []string
}

// ValidateAgainst checks a loaded configuration against the kernel: every
// scheduler and persistence engine it names must be available. It returns
// an ErrorList, or nil.
func (c *Config) ValidateAgainst(kernel Capabilities) error {
	var errs ErrorList
	if c.pos == nil {
		c.pos = newPositions(0)
	}
	ch := &checker{cfg: c, errs: &errs}
	ch.kernel(kernel)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (c *checker) kernel(k Capabilities) {
	for i := range c.cfg.VirtualServices {
		s := &c.cfg.VirtualServices[i]
		at := any(&s.Scheduler)
		if !c.written(at) {
			at = s
		}
		if k.Schedulers != nil && !slices.Contains(k.Schedulers, s.Scheduler) {
			if len(k.Schedulers) == 0 {
				c.at(at, "scheduler: %s is not available: this kernel has no IPVS schedulers at all (is ip_vs built? CONFIG_IP_VS)", s.Scheduler)
			} else {
				c.at(at, "scheduler: %s is not available in this kernel (no ip_vs_%s module): use one of %s", s.Scheduler, s.Scheduler, joinOr(k.Schedulers))
			}
		}
		if p := s.Persistence; p != nil && p.Engine != "" && k.PersistenceEngines != nil && !slices.Contains(k.PersistenceEngines, p.Engine) {
			c.at(&p.Engine, "engine: persistence engine %s is not available in this kernel (no ip_vs_pe_%s module): remove engine", p.Engine, p.Engine)
		}
	}
}

// KernelSchedulers lists the IPVS schedulers a kernel has, from its
// modules directory (/lib/modules/$(uname -r)): ip_vs_*.ko* scheduler
// modules, and those built in according to modules.builtin. The names are
// sorted ("rr", "wrr", ...).
func KernelSchedulers(modulesDir string) ([]string, error) {
	caps, err := KernelCapabilities(modulesDir)
	return caps.Schedulers, err
}

// KernelCapabilities reads the schedulers and persistence engines a kernel
// has from its modules directory, as KernelSchedulers does.
func KernelCapabilities(modulesDir string) (Capabilities, error) {
	caps := Capabilities{Schedulers: []string{}, PersistenceEngines: []string{}}
	if _, err := os.Stat(modulesDir); err != nil {
		return caps, fmt.Errorf("listing IPVS modules in %s: %w", modulesDir, err)
	}
	add := func(file string) {
		name, ok := ipvsModule(file)
		if !ok {
			return
		}
		if engine, isPE := strings.CutPrefix(name, "pe_"); isPE {
			caps.PersistenceEngines = append(caps.PersistenceEngines, engine)
		} else if slices.Contains(ipvs.Schedulers, name) {
			caps.Schedulers = append(caps.Schedulers, name)
		}
	}
	// Most kernels keep IPVS in one directory; look everywhere otherwise
	// (updates/, extra/, a flat layout).
	root := filepath.Join(modulesDir, "kernel", "net", "netfilter", "ipvs")
	if _, err := os.Stat(root); err != nil {
		root = modulesDir
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // an unreadable subdirectory hides nothing we need
		}
		if !d.IsDir() {
			add(d.Name())
		}
		return nil
	})
	if err != nil {
		return caps, fmt.Errorf("listing IPVS modules in %s: %w", modulesDir, err)
	}
	if f, err := os.Open(filepath.Join(modulesDir, "modules.builtin")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			add(filepath.Base(strings.TrimSpace(sc.Text())))
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return caps, fmt.Errorf("reading %s: %w", filepath.Join(modulesDir, "modules.builtin"), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return caps, fmt.Errorf("reading modules.builtin in %s: %w", modulesDir, err)
	}
	slices.Sort(caps.Schedulers)
	caps.Schedulers = slices.Compact(caps.Schedulers)
	slices.Sort(caps.PersistenceEngines)
	caps.PersistenceEngines = slices.Compact(caps.PersistenceEngines)
	return caps, nil
}

// ipvsModule returns "rr" for ip_vs_rr.ko, ip_vs_rr.ko.xz, .ko.zst, .ko.gz.
func ipvsModule(file string) (string, bool) {
	name, ok := strings.CutPrefix(file, "ip_vs_")
	if !ok {
		return "", false
	}
	i := strings.Index(name, ".ko")
	if i <= 0 {
		return "", false
	}
	switch name[i:] {
	case ".ko", ".ko.xz", ".ko.zst", ".ko.gz":
		return name[:i], true
	}
	return "", false
}
