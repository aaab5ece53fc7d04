// Package liveness holds wsalive's heartbeat logic: policies and their
// detection bound, and the per-loop timer wheel. (The NAT and load-balancer
// idle limits a route's client heartbeat is checked against live in the
// config package, nat.go.) It is pure logic over a caller-supplied
// clock (int64 nanoseconds of a monotonic clock) and does no I/O, so every
// path is tested with a fake clock.
package liveness
