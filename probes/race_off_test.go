//go:build !race

package probes

// raceDetector: this test binary was built with -race.
const raceDetector = false
