// Command docgen writes lvskit's man pages, bash completions and default
// config from the sources people already read: each program's --help
// (run from the built binaries, so the page and the program cannot
// disagree) and examples/reference.yaml. `make man` runs it; the .deb
// ships what it writes.
//
//	docgen -bin bin -reference examples/reference.yaml -out build/doc -version 1.2.0 -date 2026-12-05
//
// It writes man/lvsd.8.gz, man/lvstop.8.gz, man/lvsdiag.8.gz,
// man/lvsd.yaml.5.gz (gzip -9n, as Debian wants them), completions/lvsd,
// completions/lvstop, completions/lvsdiag, lvsd.yaml (the default
// config) and changelog.gz (the package's Debian changelog).
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// program is one binary: the help texts to run and what --help does not
// say.
type program struct {
	name        string
	description []string
	subs        []string // subcommands with help of their own
	extra       []Section
	seeAlso     []string
}

var programs = []program{
	{
		name: "lvsd",
		description: []string{
			"lvsd keeps the kernel's IPVS table equal to a declarative configuration (lvsd.yaml(5)): virtual services and their real servers, health-checked, with failed real servers quiesced or removed, and VRRP failover of the virtual addresses between directors. It owns only the services in its configuration and in its state file; other rules are left alone.",
			"lvsd check validates a configuration and prints every error with its file:line:column; lvsd plan prints the IPVS writes the configuration needs now, without sending them; lvsd import-keepalived prints the lvsd configuration of a keepalived.conf and names what it cannot import.",
		},
		extra: []Section{
			{"Signals", []string{
				"SIGHUP reloads the configuration: a rejected one is logged with its errors and the running configuration keeps serving. SIGTERM and SIGINT stop lvsd; the IPVS rules stay in place unless flush_on_stop is set, so that a restart does not drop traffic.",
			}},
			{"Service", []string{
				"The lvsd.service unit runs lvsd --config /etc/lvsd/lvsd.yaml as root with only the capabilities CAP_NET_ADMIN (IPVS, addresses, sysctls under /proc/sys/net/ipv4/vs), CAP_NET_RAW (VRRP and gratuitous ARP) and CAP_SYS_MODULE (loading ip_vs and the schedulers the configuration names), and tells systemd when it is ready (Type=notify). systemctl reload lvsd sends SIGHUP.",
			}},
			{"Files", []string{
				"/etc/lvsd/lvsd.yaml: the configuration. /var/lib/lvsd: the state file (which rules lvsd owns). /lib/systemd/system/lvsd.service: the unit. /usr/share/doc/lvskit/examples: configurations, one setup each, and reference.yaml with every key. /usr/share/doc/lvskit/contrib: a Grafana dashboard and Prometheus alerting rules for lvsd's metrics.",
			}},
			{"Exit status", []string{
				"0 stopped cleanly (or check found no error); 1 the configuration was refused or lvsd stopped on an error; 2 a usage error, or IPVS could not be opened.",
			}},
		},
		seeAlso: []string{"lvsd.yaml(5)", "lvstop(8)", "lvsdiag(8)", "ipvsadm(8)", "keepalived(8)"},
	},
	{
		name: "lvstop",
		description: []string{
			"lvstop shows the kernel's IPVS table live, as one screen that refreshes every 2 seconds: services, real servers, rates and the connection table, with a running lvsd's health and why a real server is out. Enter drills into a service, c opens the connection table, / filters, w saves a snapshot tree for --proc, ? lists the keys, q quits.",
		},
		extra: []Section{
			{"Exit status", []string{"0 on quit; 1 IPVS or lvsd could not be read (the message says what to do); 2 a usage error."}},
		},
		seeAlso: []string{"lvsd(8)", "lvsdiag(8)", "ipvsadm(8)"},
	},
	{
		name: "lvsdiag",
		subs: []string{"run", "rs", "vrrp", "trace", "drill"},
		extra: []Section{
			{"Exit status", []string{"0 clean; 1 findings at or above --fail-on; 2 could not run (bad flags, or no check could run)."}},
		},
		seeAlso: []string{"lvsd(8)", "lvstop(8)", "lvsd.yaml(5)"},
	},
}

type options struct {
	bin, reference, out, version, date, maintainer string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory of the built lvsd, lvstop and lvsdiag")
	flag.StringVar(&o.reference, "reference", "examples/reference.yaml", "the reference config")
	flag.StringVar(&o.out, "out", "build/doc", "output directory")
	flag.StringVar(&o.version, "version", "devel", "version for the pages' footers")
	flag.StringVar(&o.date, "date", "", "date for the pages' footers, YYYY-MM-DD (required: the last commit's, for reproducible pages)")
	flag.StringVar(&o.maintainer, "maintainer", "", "the package's maintainer, \"Name <address>\", for the Debian changelog")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "docgen: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.date == "" {
		return errors.New("-date is required: git log -1 --format=%cs")
	}
	day, err := time.Parse(time.DateOnly, o.date)
	if err != nil {
		return fmt.Errorf("-date %q: want YYYY-MM-DD", o.date)
	}
	if o.maintainer == "" {
		return errors.New("-maintainer is required: \"Name <address>\"")
	}
	for _, d := range []string{"man", "completions"} {
		if err := os.MkdirAll(filepath.Join(o.out, d), 0o755); err != nil {
			return err
		}
	}
	for _, p := range programs {
		page, err := buildPage(p, o)
		if err != nil {
			return err
		}
		if err := writeGzip(filepath.Join(o.out, "man", p.name+".8.gz"), page.Man()); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.out, "completions", p.name), page.Completion(), 0o644); err != nil {
			return err
		}
	}
	text, err := os.ReadFile(o.reference)
	if err != nil {
		return err
	}
	ref, err := ParseReference(o.reference, text)
	if err != nil {
		return err
	}
	if err := writeGzip(filepath.Join(o.out, "man", "lvsd.yaml.5.gz"), ref.ConfigMan(o.version, o.date)); err != nil {
		return err
	}
	if err := writeGzip(filepath.Join(o.out, "changelog.gz"), changelog(o.version, o.maintainer, day)); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.out, "lvsd.yaml"), ref.DefaultConfig(), 0o644)
}

// changelog is the native package's Debian changelog: one entry for the
// version built (the project's history is its git log).
func changelog(version, maintainer string, day time.Time) []byte {
	return fmt.Appendf(nil, "lvskit (%s) unstable; urgency=medium\n\n  * Built from the lvskit repository; its git log is the history.\n\n -- %s  %s\n",
		version, maintainer, day.Format(time.RFC1123Z))
}

func buildPage(p program, o options) (Page, error) {
	page := Page{Program: p.name, Section: "8", Version: o.version, Date: o.date,
		Description: p.description, Extra: p.extra, SeeAlso: p.seeAlso}
	bin := filepath.Join(o.bin, p.name)
	top, err := help(bin, p.name, "--help")
	if err != nil {
		return page, err
	}
	page.Top = top
	for _, s := range p.subs {
		h, err := help(bin, p.name, s, "--help")
		if err != nil {
			return page, err
		}
		page.Subs = append(page.Subs, SubHelp{Name: s, Help: h})
	}
	return page, nil
}

// help runs the binary with args and parses what it prints (the flag
// package writes help to stderr, some programs to stdout).
func help(bin, name string, args ...string) (Help, error) {
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Help{}, fmt.Errorf("%s %v: %w: %s", bin, args, err, out.Bytes())
	}
	return ParseHelp(name, out.String())
}

// writeGzip writes b gzipped at the best compression with no name and no
// time stamp (gzip -9n): the same input gives the same bytes.
func writeGzip(path string, b []byte) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, bytes.NewReader(b)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
