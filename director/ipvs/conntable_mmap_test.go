package ipvs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bigTable writes a generated table large enough to be mapped.
func bigTable(t *testing.T, edit func(lines []string)) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	if err := GenerateConnTable(&b, 130_000, 11); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		lines := strings.SplitAfter(b.String(), "\n")
		edit(lines)
		b.Reset()
		b.WriteString(strings.Join(lines, ""))
	}
	if b.Len() < (aggReleaseEvery+1)*aggChunkSize {
		t.Fatalf("table of %d bytes is too small to be mapped", b.Len())
	}
	path := filepath.Join(t.TempDir(), "ip_vs_conn")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b.Bytes()
}

func TestAggregateMapped(t *testing.T) {
	path, data := bigTable(t, nil)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, ok, err := aggregateMapped(f, path)
	if !ok || err != nil {
		t.Fatalf("aggregateMapped: %v, %v; want it mapped", ok, err)
	}
	sameSummary(t, got, scanSummary(t, data))
	if at, _ := f.Seek(0, io.SeekCurrent); at != int64(len(data)) {
		t.Errorf("left the file at %d, want its end %d", at, len(data))
	}

	// From where the file was left: a table whose first line is an entry.
	at := int64(bytes.IndexByte(data, '\n') + 1 + 3*aggChunkSize/2)
	at += int64(bytes.IndexByte(data[at:], '\n') + 1)
	if _, err := f.Seek(at, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err = Aggregate(f)
	if err != nil {
		t.Fatal(err)
	}
	sameSummary(t, got, scanSummary(t, data[at:]))

	// AggregateFile maps it too.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc/net"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, ProcConn), data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = AggregateFile(root)
	if err != nil {
		t.Fatal(err)
	}
	sameSummary(t, got, scanSummary(t, data))
}

// TestAggregateMappedErrors: a mapped file's first malformed line is the
// one reported, with its line number, as reading it would.
func TestAggregateMappedErrors(t *testing.T) {
	for _, bad := range []int{2, 30_000, 129_999} {
		path, data := bigTable(t, func(lines []string) {
			lines[bad-1] = "TCP 0A000101 1F90 0A000064 0050 0A00020B 0050\n"
			if bad+5000 < len(lines) {
				lines[bad+5000-1] = "bogus\n"
			}
		})
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		_, ok, err := aggregateMapped(f, path)
		f.Close()
		_, want := ParseConnections(bytes.NewReader(data))
		var pe *ParseError
		if !ok || !errors.As(err, &pe) || pe.Line != bad || err.Error() != strings.Replace(want.Error(), "ip_vs_conn", path, 1) {
			t.Errorf("line %d: aggregateMapped %v, %v; want %v", bad, ok, err, want)
		}
	}
}

// A table too small to be worth mapping, or a file that is not regular,
// is read.
func TestAggregateNotMapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip_vs_conn")
	in := connTableHeader + strings.Join(fixedLines, "\n") + "\n"
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok, _ := aggregateMapped(f, path); ok {
		t.Error("mapped a small file")
	}
	got, err := Aggregate(f)
	if err != nil {
		t.Fatal(err)
	}
	sameSummary(t, got, scanSummary(t, []byte(in)))

	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, ok, _ := aggregateMapped(d, path); ok {
		t.Error("mapped a directory")
	}
}

// TestAggregateMappedShrinks: a file cut short while it is mapped makes
// the lost pages fault; Aggregate recovers and reads what is left.
func TestAggregateMappedShrinks(t *testing.T) {
	path, data := bigTable(t, nil)
	keep := bytes.IndexByte(data[aggChunkSize:], '\n') + aggChunkSize + 1
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	aggMappedHook = func() {
		if err := os.Truncate(path, int64(keep)); err != nil {
			t.Error(err)
		}
	}
	defer func() { aggMappedHook = nil }()
	got, err := Aggregate(f)
	if err != nil {
		t.Fatal(err)
	}
	sameSummary(t, got, scanSummary(t, data[:keep]))
}

// TestAggregateMappedLastRelease: a file whose last chunk is one after
// which pages are released, and is shorter than a chunk.
func TestAggregateMappedLastRelease(t *testing.T) {
	_, data := bigTable(t, nil)
	end := aggReleaseEvery*aggChunkSize - aggChunkSize/2
	end = bytes.LastIndexByte(data[:end], '\n') + 1
	path := filepath.Join(t.TempDir(), "ip_vs_conn")
	if err := os.WriteFile(path, data[:end], 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, ok, err := aggregateMapped(f, path)
	if !ok || err != nil {
		t.Fatalf("aggregateMapped: %v, %v; want it mapped", ok, err)
	}
	sameSummary(t, got, scanSummary(t, data[:end]))
}
