//go:build unix

package health_test

import (
	"context"
	"testing"

	"github.com/lvskit/lvskit/director/health"
)

// BenchmarkScriptCheck is one script check of /bin/true: the cost per run
// of starting a program (its process group, environment and the kill of
// its leftovers). Script security adds nothing here: the program was
// resolved and checked when the config was loaded.
func BenchmarkScriptCheck(b *testing.B) {
	c, err := health.NewScriptChecker(health.ScriptCheck{Argv: []string{"/bin/true"}}, health.Env{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := c.Check(ctx); !r.Up {
			b.Fatal(r.Reason)
		}
	}
}
