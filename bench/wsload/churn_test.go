package wsload

import (
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func TestChurnCompletesEveryConnection(t *testing.T) {
	forEachClient(t, testChurnCompletesEveryConnection)
}

func testChurnCompletesEveryConnection(t *testing.T, client string) {
	srv, _, url := startEcho(t)
	const n = 40
	sum := run(t, Config{
		Mode:            ModeChurn,
		Client:          client,
		URL:             url,
		N:               n,
		Rate:            -1,
		DialConcurrency: 8,
		Size:            64,
	})
	st := sum.Churn
	if sum.Opened != n || st.Completed != n || st.Failed != 0 || sum.Errors != 0 {
		t.Fatalf("opened %d, completed %d, failed %d, errors %v", sum.Opened, st.Completed, st.Failed, sum.ErrorKinds)
	}
	if st.RTT.Count != n || st.Lifetime.Count != n || st.Lifetime.P50Ms < st.RTT.P50Ms || st.ConnsPerSec <= 0 {
		t.Fatalf("rtt %+v, lifetime %+v, rate %v", st.RTT, st.Lifetime, st.ConnsPerSec)
	}
	// Every connection waited for the server's FIN: none is left.
	if got := srv.Conns(); got != 0 {
		t.Fatalf("server still has %d connections", got)
	}
}

func TestChurnDetectsCorruption(t *testing.T) { forEachClient(t, testChurnDetectsCorruption) }

func testChurnDetectsCorruption(t *testing.T, client string) {
	url := serveRaw(t, func(c net.Conn) {
		p, op, err := wsutil.ReadClientData(c)
		if err != nil {
			return
		}
		p[len(p)-1] ^= 0x01
		wsutil.WriteServerMessage(c, op, p)
		// Then answer the close, if one comes.
		if _, _, err := wsutil.ReadClientData(c); err != nil {
			ws.WriteFrame(c, ws.NewCloseFrame(nil))
		}
	})
	sum := run(t, Config{Mode: ModeChurn, Client: client, URL: url, N: 3, Size: 32, CloseTimeout: 2 * time.Second})
	if sum.Churn.Completed != 0 || sum.Churn.Failed != 3 || sum.ErrorKinds["churn: echo differs from what was sent"] != 3 {
		t.Fatalf("completed %d, failed %d, errors %v", sum.Churn.Completed, sum.Churn.Failed, sum.ErrorKinds)
	}
}

func TestFloorMeasuresRoundTrips(t *testing.T) {
	sum := run(t, Config{Mode: ModeFloor, Size: 6, ReplySize: 10, Duration: 100 * time.Millisecond})
	st := sum.Floor
	if st == nil || st.RoundTrips == 0 || st.CPUSeconds < 0 || st.Seconds < 0.1 {
		t.Fatalf("floor: %+v", st)
	}
	if st.CPUPerWriteReadUs*2 != st.CPUPerRoundTripUs {
		t.Fatalf("per write+read %v is not half of per round trip %v", st.CPUPerWriteReadUs, st.CPUPerRoundTripUs)
	}
}
