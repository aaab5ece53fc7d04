// Package liveness holds wsalive's heartbeat logic: policies, the per-loop
// timer wheel and NAT idle limits. It is pure logic over a caller-supplied
// clock (int64 nanoseconds of a monotonic clock) and does no I/O, so every
// path is tested with a fake clock.
package liveness
