package probes

import (
	"os"
	"strings"
	"testing"
)

func TestKallsymsNamesLocations(t *testing.T) {
	syms, err := ParseKallsyms(strings.NewReader(`ffffffff81000000 T _stext
ffffffff81a0b2c0 T nf_hook_slow
ffffffff81a0b3a0 T nf_hook_slow_list
ffffffff81a0b3a0 t nf_hook_slow_list_alias
ffffffff82000000 D some_data
ffffffffc0a01230 t ip_vs_in_hook	[ip_vs]
ffffffffc0a01800 t ip_vs_out_hook	[ip_vs]
`))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[uint64]string{
		0xffffffff81a0b2c0 + 0x8d: "nf_hook_slow+0x8d",
		0xffffffff81a0b3a0:        "nf_hook_slow_list+0x0",
		0xffffffffc0a01230 + 0x10: "ip_vs_in_hook+0x10 [ip_vs]",
	} {
		if got, ok := syms.Describe(addr); !ok || got != want {
			t.Errorf("Describe(%#x) = %q, %v; want %q", addr, got, ok, want)
		}
	}
	if _, ok := syms.Describe(0x1000); ok {
		t.Errorf("an address below every symbol was named")
	}
	if !syms.Has("ip_vs_out_hook") || syms.Has("some_data") || syms.Has("ip_vs_try_to_schedule") {
		t.Errorf("Has: text symbols only, and only those listed")
	}
}

func TestKallsymsWithoutAddressesStillNamesFunctions(t *testing.T) {
	// What a reader without CAP_SYSLOG sees.
	syms, err := ParseKallsyms(strings.NewReader("0000000000000000 T nf_hook_slow\n0000000000000000 t ip_vs_in_hook\t[ip_vs]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !syms.Has("ip_vs_in_hook") {
		t.Error("ip_vs_in_hook not found")
	}
	if _, ok := syms.Describe(0xffffffff81a0b2c0); ok {
		t.Error("a location was named from zero addresses")
	}
}

func TestKallsymsBadLineNamesTheLine(t *testing.T) {
	for _, in := range []string{"ffffffff81000000 T _stext\nnonsense\n", "zzzz T name\n"} {
		_, err := ParseKallsyms(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), "kallsyms:") {
			t.Errorf("%q: %v, want an error naming the line", in, err)
		}
	}
}

// The kallsyms excerpts captured in the VM name the drop locations of
// the recorded events.
func TestKallsymsFixtures(t *testing.T) {
	for _, k := range []string{"6.1", "6.12"} {
		f, err := os.Open("testdata/kallsyms-" + k)
		if err != nil {
			t.Fatal(err)
		}
		syms, err := ParseKallsyms(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if !syms.Has("nf_hook_slow") || !syms.Has("ip_vs_in_hook") {
			t.Errorf("%s: nf_hook_slow or ip_vs_in_hook missing", k)
		}
	}
}

func BenchmarkParseKallsyms(b *testing.B) {
	data, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		b.Skip(err)
	}
	for range b.N {
		if _, err := ParseKallsyms(strings.NewReader(string(data))); err != nil {
			b.Fatal(err)
		}
	}
}
