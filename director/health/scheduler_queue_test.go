package health

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestDueQueueOrdersByDueThenID checks the scheduler's queue against a
// sorted list through random pushes, changes of due time, removals and
// pops: it hands out the entries by due time, then ID, whatever was done
// to it before.
func TestDueQueueOrdersByDueThenID(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Now() // with a monotonic reading, as the system clock's
	var q dueQueue
	var queued []*entry
	want := func() []*entry {
		s := slices.Clone(queued)
		slices.SortFunc(s, func(a, b *entry) int {
			if c := a.due.Compare(b.due); c != 0 {
				return c
			}
			if a.target.ID < b.target.ID {
				return -1
			}
			return 1
		})
		return s
	}
	for i := range 2000 {
		switch op := rng.IntN(10); {
		case op < 5 || len(queued) == 0:
			// Due times collide often, so that the ID decides.
			e := &entry{target: Target{ID: fmt.Sprintf("rs%04d", i)}, due: base.Add(time.Duration(rng.IntN(50)) * time.Millisecond), index: -1}
			q.push(e)
			queued = append(queued, e)
		case op < 7:
			e := queued[rng.IntN(len(queued))]
			e.due = base.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
			q.fix(e)
		case op < 8:
			k := rng.IntN(len(queued))
			q.remove(queued[k])
			if queued[k].index != -1 {
				t.Fatalf("a removed entry keeps index %d", queued[k].index)
			}
			queued = slices.Delete(queued, k, k+1)
		default:
			w := want()[0]
			if got := q.pop(); got != w {
				t.Fatalf("step %d: pop gave %s due %v, want %s due %v", i, got.target.ID, got.due.Sub(base), w.target.ID, w.due.Sub(base))
			}
			queued = slices.DeleteFunc(queued, func(e *entry) bool { return e == w })
		}
		if q.len() != len(queued) {
			t.Fatalf("step %d: %d queued, want %d", i, q.len(), len(queued))
		}
	}
	for _, w := range want() {
		if got := q.pop(); got != w {
			t.Fatalf("draining: pop gave %s, want %s", got.target.ID, w.target.ID)
		}
	}
}
