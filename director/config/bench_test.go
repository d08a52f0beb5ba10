package config

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lvskit/lvskit/director/scripts"
)

// bigConfig is a file of n services with 4 real servers each, the size of
// the reconciler's benchmark table.
func bigConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("virtual_services:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - address: 10.%d.%d.%d\n    port: 80\n    scheduler: wrr\n    health_check: {type: tcp}\n    real_servers:\n", 100+i/65536, i/256%256, i%256)
		for j := range 4 {
			fmt.Fprintf(&b, "      - {address: 172.16.%d.%d, weight: %d}\n", j, 1+i%250, j+1)
		}
	}
	return []byte(b.String())
}

func TestBigConfig(t *testing.T) {
	cfg, err := Parse("big.yaml", bigConfig(10000), LoadOptions{FS: fstest.MapFS{}})
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Desired(); len(d) != 10000 || len(d[9999].RealServers) != 4 {
		t.Fatalf("Desired: %d services", len(d))
	}
}

func BenchmarkLoad10000x4(b *testing.B) {
	data := bigConfig(10000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("big.yaml", data, LoadOptions{FS: fstest.MapFS{}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad10000x4ScriptChecks loads 10,000 services whose check is
// a script, without (unchecked) and with (checked) script security on
// this host's filesystem: the difference is what the checks add to a
// load (each program is walked once per load, each user looked up once).
func BenchmarkLoad10000x4ScriptChecks(b *testing.B) {
	if _, err := os.Stat("/usr/bin/true"); err != nil || runtime.GOOS != "linux" {
		b.Skip("needs Linux and /usr/bin/true")
	}
	data := bytes.ReplaceAll(bigConfig(10000), []byte("health_check: {type: tcp}"), []byte("health_check: {type: script, command: [/usr/bin/true]}"))
	for _, bm := range []struct {
		name string
		host scripts.Host
	}{{"unchecked", nil}, {"checked", scripts.OS()}} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Parse("big.yaml", data, LoadOptions{FS: fstest.MapFS{}, Scripts: bm.host}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
