package config

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
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
