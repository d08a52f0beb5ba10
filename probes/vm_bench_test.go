//go:build vmtest && linux && amd64

package probes_test

import (
	"context"
	"github.com/lvskit/lvskit/director/ipvs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/lvskit/lvskit/probes"
)

// BenchmarkVMAttach measures Open (resolve, load, attach every target)
// and Close (detach) per backend, on the VM's kernel. Backends the kernel
// lacks are skipped. Goal: attach <= 1 s (on hardware; the VM is TCG).
func BenchmarkVMAttach(b *testing.B) {
	for _, backend := range []probes.Backend{probes.BackendAuto, probes.BackendFentry, probes.BackendKprobe, probes.BackendKprobeMulti} {
		b.Run(string(backend), func(b *testing.B) {
			var open, close time.Duration
			attached := 0
			for range b.N {
				start := time.Now()
				tr, err := probes.Open(probes.Options{Backend: backend, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
				if err != nil {
					b.Fatal(err)
				}
				open += time.Since(start)
				attached = 0
				for _, a := range tr.Attachments() {
					if a.Backend == string(backend) || backend == probes.BackendAuto {
						attached++
					}
				}
				start = time.Now()
				if err := tr.Close(); err != nil {
					b.Fatal(err)
				}
				close += time.Since(start)
			}
			if attached < 3 {
				b.Skipf("%s: only %d targets attach on this kernel", backend, attached)
			}
			b.ReportMetric(open.Seconds()/float64(b.N), "attach-s")
			b.ReportMetric(close.Seconds()/float64(b.N), "detach-s")
			b.ReportMetric(float64(attached), "targets")
		})
	}
}

// BenchmarkVMEventRate sends a burst of UDP datagrams from a client
// through a DR service as fast as the client can, with the tracer
// reading every hop, and reports the event rate it kept up with and the
// events lost (the goal is 0 at the lab's rate).
func BenchmarkVMEventRate(b *testing.B) {
	v := newVMLabTB(b)
	vip := netip.MustParseAddrPort("10.77.0.200:5000")
	key := ipvs.UDPKey(vip)
	if err := v.ipvs.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr"}); err != nil {
		b.Fatal(err)
	}
	if err := v.ipvs.AddRealServer(key, ipvs.RealServer{Address: v.realServers["dr1"], Port: 5000, Forwarding: ipvs.DirectRoute, Weight: 1}); err != nil {
		b.Fatal(err)
	}
	const packets = 2000
	for range b.N {
		tr, err := probes.Open(probes.Options{Filter: probes.Filter{VIP: vip.Addr(), Port: vip.Port(), NetNS: v.netns}})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		events := 0
		done := make(chan error, 1)
		go func() {
			for {
				_, err := tr.Read(ctx)
				if err != nil {
					done <- err
					return
				}
				events++
			}
		}()
		start := time.Now()
		err = v.client.Do(func() error {
			c, err := net.Dial("udp", vip.String())
			if err != nil {
				return err
			}
			defer c.Close()
			for range packets {
				if _, err := c.Write([]byte("lvskit")); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		sent := time.Since(start)
		cancel() // the reader drains what is buffered, then stops
		if err := <-done; err != context.Canceled {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		lost, _ := tr.Lost()
		tr.Close()
		b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(packets)/sent.Seconds(), "packets/s")
		b.ReportMetric(float64(events), "events")
		b.ReportMetric(float64(lost), "lost")
	}
}
