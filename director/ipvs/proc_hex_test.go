package ipvs

import (
	"strconv"
	"testing"
)

// TestHexLanesAgainstStrconv checks the SWAR decoder against strconv on
// every byte value in every position.
func TestHexLanesAgainstStrconv(t *testing.T) {
	base := []byte("09afAF3c")
	for pos := range 8 {
		for c := range 256 {
			b := append([]byte(nil), base...)
			b[pos] = byte(c)
			got, ok := hex8(b)
			want, err := strconv.ParseUint(string(b), 16, 32)
			if ok != (err == nil) || (ok && uint64(got) != want) {
				t.Fatalf("hex8(%q) = %#x, %v; strconv gives %#x, %v", b, got, ok, want, err)
			}
			got4, ok4 := hex4(b[pos/2*1 : pos/2*1+4])
			want4, err4 := strconv.ParseUint(string(b[pos/2:pos/2+4]), 16, 16)
			if ok4 != (err4 == nil) || (ok4 && uint64(got4) != want4) {
				t.Fatalf("hex4(%q) = %#x, %v; strconv gives %#x, %v", b[pos/2:pos/2+4], got4, ok4, want4, err4)
			}
		}
	}
}
