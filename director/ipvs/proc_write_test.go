package ipvs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// WriteServiceTable writes, byte for byte, the /proc/net/ip_vs files
// captured from real kernels that it parsed.
func TestWriteServiceTableReproducesCapturedFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/proc/*/ip_vs")
	if err != nil || len(files) == 0 {
		t.Fatalf("no captured ip_vs files: %v", err)
	}
	for _, file := range files {
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		table, err := ParseServiceTable(bytes.NewReader(want))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var got bytes.Buffer
		if err := WriteServiceTable(&got, table); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: written back differently:\n--- got\n%s--- want\n%s", file, got.Bytes(), want)
		}
	}
}
