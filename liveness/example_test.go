package liveness_test

import (
	"fmt"
	"time"

	"github.com/wsalive/wsalive/liveness"
)

// A side that stops answering: pinged after an interval of silence, pinged
// again at once after each unanswered timeout, dead after MaxMissed misses,
// interval + MaxMissed × timeout after it was last heard from. The clock is
// plain nanoseconds, here counted from zero.
func ExampleSide() {
	p := liveness.Policy{Interval: 20 * time.Second, Timeout: 10 * time.Second, MaxMissed: 2}
	var s liveness.Side
	s.Start(&p, 0)

	at := func(d time.Duration) int64 { return int64(d) }
	s.Received(at(5 * time.Second)) // traffic postpones the ping
	now := at(20 * time.Second)     // the owner's timer fires
	for {
		act, next := s.Check(&p, now)
		switch act {
		case liveness.Wait:
			fmt.Printf("%v: wait until %v\n", time.Duration(now), time.Duration(next))
		case liveness.SendPing:
			var buf [liveness.PingPayloadSize]byte
			payload := s.PingPayload(buf[:0])
			fmt.Printf("%v: ping %d bytes, missed %d, answer by %v\n",
				time.Duration(now), len(payload), s.Stats().Missed, time.Duration(next))
		case liveness.Dead:
			fmt.Printf("%v: dead after %d misses (bound %v after the last receipt)\n",
				time.Duration(now), s.Stats().Missed, p.DetectionBound())
			return
		}
		now = next
	}
	// Output:
	// 20s: wait until 25s
	// 25s: ping 15 bytes, missed 0, answer by 35s
	// 35s: ping 15 bytes, missed 1, answer by 45s
	// 45s: dead after 2 misses (bound 40s after the last receipt)
}

// A pong carrying the payload of the outstanding ping gives a round-trip
// time and forgives earlier misses; pongs that are not wsalive's are left
// to the peers.
func ExampleSide_Pong() {
	p := liveness.Policy{Interval: 20 * time.Second, Timeout: 10 * time.Second, MaxMissed: 2}
	var s liveness.Side
	s.Start(&p, 0)

	sent := int64(20 * time.Second)
	s.Check(&p, sent) // SendPing
	var buf [liveness.PingPayloadSize]byte
	ping := s.PingPayload(buf[:0])

	fmt.Println(liveness.IsOwnPong(ping), liveness.IsOwnPong([]byte("app heartbeat")))
	s.Pong(&p, ping, sent+int64(42*time.Millisecond))
	st := s.Stats()
	fmt.Println(st.PingsSent, st.PongsReceived, st.Missed, st.LastRTT)
	// Output:
	// true false
	// 1 1 0 42ms
}

func ExamplePolicy_DetectionBound() {
	fixed := liveness.Policy{Interval: 20 * time.Second, Timeout: 10 * time.Second, MaxMissed: 2}
	adaptive := liveness.Policy{Interval: 20 * time.Second, Timeout: 10 * time.Second, MaxMissed: 2,
		MinInterval: 10 * time.Second, MaxInterval: time.Minute}
	fmt.Println(fixed.DetectionBound(), adaptive.DetectionBound())
	// Output: 40s 1m20s
}
