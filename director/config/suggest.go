package config

import (
	"sort"
	"strings"
)

// closest returns the candidate nearest to s by edit distance, or "" when
// none is near enough to be a plausible typo.
func closest(s string, candidates []string) string {
	s = strings.ToLower(s)
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(s, c)
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := max(2, len(s)/3)
	if bestDist >= 0 && bestDist <= limit {
		return best
	}
	// A key written with dashes or without underscores, or a prefix.
	norm := strings.NewReplacer("-", "", "_", "").Replace(s)
	for _, c := range candidates {
		cn := strings.ReplaceAll(c, "_", "")
		if norm == cn || (len(norm) >= 4 && (strings.HasPrefix(cn, norm) || strings.HasPrefix(norm, cn))) {
			return c
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, counting an
// adjacent transposition as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Long keys are not typos of short ones; keep the cost bounded.
		if a == b {
			return 0
		}
		return max(len(ra), len(rb))
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// didYouMean formats the suggestion part of a message about value s among
// the known names.
func didYouMean(s string, known []string) string {
	if c := closest(s, known); c != "" {
		return "did you mean " + quote(c) + "?"
	}
	return "use one of " + joinOr(known)
}

// joinOr lists names as "a, b or c".
func joinOr(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func quote(s string) string { return `"` + s + `"` }
