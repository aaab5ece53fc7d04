//go:build !unix

package relay

import "time"

// processCPU is not measured here: benchmarks report no cpu-ns/frame.
func processCPU() (time.Duration, bool) { return 0, false }
