//go:build race

package main

// raceEnabled: the race detector slows the relay and the clients by 5-10x
// and caps live goroutines at 8128, so load tests scale down under it.
const raceEnabled = true
