package relay

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsalive/wsalive/proxy/internal/spectable"
)

// This file says which requirements of RFC 6455 §5 (framing) and §7
// (closing) the tests cover, in the manner of golang.org/x/net/http2's
// z_spec_test.go, and lists the ones they do not. The sentences are
// paraphrased from the RFC, one MUST/SHOULD each, with their section.
//
// wsalive is an intermediary: toward the client it is the server, toward
// the upstream the client, and for most data it only relays. A sentence is
// read for the role wsalive plays in it; `note` says how where it matters.
//
// Read it with: go test -run TestSpecCoverage -v ./proxy/relay
//
// TestSpecCoverage fails when a test named here does not exist (so the
// table cannot rot when tests are renamed). Names are "TestX" or
// "TestX/subtest" in this package, "e2e.TestX" in proxy/e2e; a subtest
// element must appear in a string literal of that package's tests.

var rfc6455Spec = []spectable.Sentence{
	spectable.S("5.1", "MUST", "A client masks every frame it sends to the server (wsalive's own frames toward the upstream are masked).",
		[]string{"TestAppendControlFrame", "e2e.TestNodeUpstream"}, ""),
	spectable.S("5.1", "MUST", "A server closes the connection on receiving an unmasked frame (and may send 1002).",
		[]string{"TestStreamViolations/unmasked-client-frame", "TestUnmaskedClientFrame", "e2e.TestClientProtocolViolations", "FuzzStreamParser"}, ""),
	spectable.S("5.1", "MUST NOT", "A server does not mask frames it sends to the client (wsalive's own frames toward the client are not masked).",
		[]string{"TestAppendControlFrame", "e2e.TestNodeClient"}, ""),
	spectable.S("5.1", "MUST", "A client closes the connection when it detects a masked frame (and may send 1002).",
		[]string{"TestStreamViolations/masked-server-frame", "e2e.TestUpstreamProtocolViolation", "FuzzStreamParser"}, ""),
	spectable.S("5.2", "MUST", "RSV1-3 are 0 unless a negotiated extension defines them; a non-zero value no extension defines fails the connection.",
		[]string{"TestStreamViolations/rsv1-without-extension", "TestStreamViolations/rsv2-with-deflate", "TestStreamUnknownExtension", "FuzzStreamParser"},
		"with an extension wsalive does not know, all RSV bits and reserved opcodes are left to it"),
	spectable.S("5.2", "MUST", "An unknown opcode fails the connection.",
		[]string{"TestStreamViolations/opcode=3", "TestStreamViolations/opcode=0xB", "FuzzStreamParser"}, ""),
	spectable.S("5.2", "MUST", "The most significant bit of a 64-bit payload length is 0.",
		[]string{"TestStreamViolations/length-msb", "FuzzStreamParser"}, ""),
	spectable.S("5.2", "MUST", "The payload length is encoded in the minimal number of bytes.",
		[]string{"TestAppendControlFrame"},
		"a sender rule: wsalive's own frames are control frames with 7-bit lengths; received non-minimal lengths are parsed and relayed, not refused (FuzzStreamParser seed-non-minimal-lengths)"),
	spectable.S("5.3", "MUST", "A client picks a fresh masking key for every frame.", nil,
		"each injected frame toward the upstream takes a new key from the loop's ChaCha8 generator; no test asserts that keys differ"),
	spectable.S("5.3", "MUST", "The masking key is derived from a strong source of entropy.", nil,
		"ChaCha8 seeded from crypto/rand (engine_linux.go); not testable as a property"),
	spectable.S("5.3", "defines", "Masking and unmasking XOR octet i of the payload with octet i mod 4 of the key.",
		[]string{"TestAppendControlFrame", "TestStreamControlSplit", "FuzzStreamParser"}, ""),
	spectable.S("5.4", "MUST NOT", "Control frames are not fragmented.",
		[]string{"TestStreamViolations/fragmented-control", "FuzzStreamParser"}, ""),
	spectable.S("5.4", "MUST", "Message fragments are delivered in the order sent.",
		[]string{"TestStreamFragmentedMessage", "TestRelayBytesVerbatim", "FuzzStreamParser"}, ""),
	spectable.S("5.4", "MUST NOT", "The fragments of one message are not interleaved with those of another unless an extension interprets the interleaving.",
		[]string{"TestStreamViolations/text-inside-fragmented-message", "FuzzStreamParser"}, ""),
	spectable.S("5.4", "defines", "A continuation frame continues a fragmented message; one outside a message is an error.",
		[]string{"TestStreamViolations/continuation-without-start", "FuzzStreamParser"}, ""),
	spectable.S("5.4", "MUST", "An endpoint handles control frames in the middle of a fragmented message.",
		[]string{"TestStreamFragmentedMessage", "e2e.TestFragmentsWithControlFrames", "FuzzStreamParser"}, ""),
	spectable.S("5.4", "MUST", "Clients and servers receive both fragmented and unfragmented messages.",
		[]string{"TestStreamFragmentedMessage", "e2e.TestMessages"}, ""),
	spectable.S("5.4", "MUST NOT", "An intermediary does not change the fragmentation of a control frame.",
		[]string{"TestRelayBytesVerbatim", "FuzzStreamParser"}, "wsalive forwards frames byte for byte"),
	spectable.S("5.4", "MUST NOT", "An intermediary does not change the fragmentation of a message with reserved bits it does not understand, nor on a connection with extensions it does not know.",
		[]string{"TestStreamUnknownExtension", "FuzzStreamParser"}, ""),
	spectable.S("5.4", "MAY", "Control frames may be injected between the fragments of a message (never inside a frame; injected data frames wait for the end of a message).",
		[]string{"TestStreamInjectMidFrame", "TestStreamInjectRandom", "e2e.TestHeartbeatBetweenFragments", "e2e.TestHeartbeatBehindLongFrame"},
		"§5.4 allows control frames between fragments; the frame format allows nothing inside a frame"),
	spectable.S("5.5", "MUST", "Control frames have a payload of 125 bytes or less.",
		[]string{"TestStreamViolations/control-payload=126", "FuzzStreamParser"}, ""),
	spectable.S("5.5.1", "MUST", "A close body, if any, starts with a 2-byte status code from §7.4.",
		[]string{"TestCheckClosePayload/reject/one-byte", "TestStreamViolations/handler-rejects-close", "FuzzStreamParser"}, ""),
	spectable.S("5.5.1", "MUST", "The close reason after the code is UTF-8 (invalid UTF-8 fails the connection, 1007 per §8.1).",
		[]string{"TestCheckClosePayload/reject/code=1007", "TestClosePayload", "FuzzStreamParser"},
		"TestClosePayload: wsalive's own reasons are cut on a rune boundary"),
	spectable.S("5.5.1", "MUST NOT", "No data frame is sent after a close frame.",
		[]string{"TestStreamCloseForwarded", "TestStreamCloseDropsQueue", "TestCloseNeverOvertakesEarlierData", "FuzzStreamParser"}, ""),
	spectable.S("5.5.1", "MUST", "An endpoint that receives a close and has not sent one answers with a close.",
		[]string{"e2e.TestCloseHandshake", "TestCloseTravelsBothWays"},
		"wsalive relays the close to the other peer, whose answer it relays back; when that peer is gone it answers itself"),
	spectable.S("5.5.1", "MUST", "After sending and receiving a close, an endpoint closes the TCP connection.",
		[]string{"e2e.TestCloseHandshake", "TestCloseTravelsBothWays"}, ""),
	spectable.S("5.5.2", "MUST", "An endpoint answers a ping with a pong, unless it already received a close.",
		[]string{"e2e.TestPingPongPassThrough", "e2e.TestAnswerPings"},
		"peers' pings cross to the other peer, which answers; with answer_pings wsalive answers itself"),
	spectable.S("5.5.2", "SHOULD", "The pong is sent as soon as practical.",
		[]string{"TestStreamInjectAtBoundary", "e2e.TestAnswerPings"}, "a pong goes at the next frame boundary"),
	spectable.S("5.5.3", "MUST", "A pong answering a ping carries the ping's application data.",
		[]string{"e2e.TestAnswerPings", "e2e.TestHeartbeatPongsAbsorbed"}, ""),
	spectable.S("5.6", "MUST", "The whole of a text message is valid UTF-8 (invalid UTF-8 fails the connection per §8.1).", nil,
		"an endpoint rule; wsalive relays payloads without reassembling or unmasking them, so the endpoints check"),
	spectable.S("7.1.1", "MUST", "After the close handshake the server closes the TCP connection at once.",
		[]string{"e2e.TestCloseHandshake", "TestCloseTravelsBothWays"}, ""),
	spectable.S("7.1.1", "SHOULD", "A client waits for the server to close the TCP connection.", nil,
		"toward the upstream wsalive closes its socket once the handshake is complete or close_timeout passes; no test pins which side closes first"),
	spectable.S("7.1.2", "MUST", "Starting the close handshake sends a close frame with the chosen code and reason.",
		[]string{"TestClosePayload", "e2e.TestUpstreamGone", "e2e.TestClientGone", "e2e.TestHeartbeatFrozenPeer"}, ""),
	spectable.S("7.1.2", "SHOULD", "Once a close is both sent and received, the endpoint closes the connection.",
		[]string{"e2e.TestCloseHandshake"}, ""),
	spectable.S("7.1.5", "defines", "A close without a status code counts as 1005.",
		[]string{"TestCheckClosePayload/accept/empty"}, ""),
	spectable.S("7.1.7", "MUST", "Failing the connection closes it (a server should log the problem).",
		[]string{"TestUnmaskedClientFrame", "e2e.TestClientProtocolViolations", "e2e.TestUpstreamProtocolViolation"}, ""),
	spectable.S("7.1.7", "SHOULD", "When failing an established connection, a close frame with a fitting code is sent first.",
		[]string{"TestStreamViolations", "e2e.TestClientProtocolViolations", "FuzzStreamParser"},
		"1002 for protocol errors, 1009 over the size limit, 1007 for a close reason that is not UTF-8"),
	spectable.S("7.1.7", "MUST NOT", "After failing the connection, no more data from the peer is processed.",
		[]string{"TestStreamViolations", "TestStreamSourceClosed", "FuzzStreamParser"}, ""),
	spectable.S("7.2.1", "MUST", "When the transport is lost unexpectedly, the client fails the connection.",
		[]string{"e2e.TestUpstreamGone", "e2e.TestClientGone", "e2e.TestBlackhole"},
		"the other peer gets 1001 with a reason"),
	spectable.S("7.2.3", "SHOULD", "A client reconnecting after an abnormal closure backs off.", nil,
		"not applicable: wsalive dials the upstream once per client connection and never reconnects a pair"),
	spectable.S("7.3", "SHOULD NOT", "A client does not close the connection arbitrarily.",
		[]string{"e2e.TestClientGone", "e2e.TestIdleTimeout", "e2e.TestMaxLifetime"},
		"wsalive closes the upstream side only for a stated reason: client gone, heartbeat, idle or lifetime limit, drain"),
	spectable.S("7.4.1", "MUST NOT", "1005, 1006 and 1015 are never sent in a close frame (received ones are errors).",
		[]string{"TestCheckClosePayload/reject/code=1005", "TestCheckClosePayload/reject/code=1006", "TestCheckClosePayload/reject/code=1015", "FuzzStreamParser"}, ""),
	spectable.S("7.4.1", "defines", "1009 ends a connection that received a message too big to process.",
		[]string{"TestStreamViolations/over-max-payload", "FuzzStreamParser"}, ""),
	spectable.S("7.4.2", "defines", "Codes 0-999 are not used and 1016-2999 are reserved; 3000-4999 are for libraries and applications and cross.",
		[]string{"TestCheckClosePayload/reject/code=999", "TestCheckClosePayload/reject/code=2999", "TestCheckClosePayload/accept/code=4999", "e2e.TestCloseHandshake", "FuzzStreamParser"}, ""),
}

// specPackages maps a test-name prefix to the directory of its package.
var specPackages = map[string]string{"": ".", "e2e.": filepath.Join("..", "e2e")}

func TestSpecCoverage(t *testing.T) {
	problems, report := spectable.Check(t, "RFC 6455", rfc6455Spec, specPackages)
	for _, p := range problems {
		t.Error(p)
	}
	for _, line := range report {
		t.Log(line)
	}
}

// TestSpecCoverageCatchesMissingTests: the check does fail for a test or
// subtest that does not exist, and counts what it should.
func TestSpecCoverageCatchesMissingTests(t *testing.T) {
	table := []spectable.Sentence{
		spectable.S("5.1", "MUST", "exists", []string{"TestSpecCoverage", "e2e.TestCloseHandshake/client-closes-4001"}, ""),
		spectable.S("5.2", "MUST", "no such test", []string{"TestNoSuchTest"}, ""),
		spectable.S("5.3", "MUST", "no such subtest", []string{"TestStreamViolations/no-such-case"}, ""),
		spectable.S("5.4", "MUST", "no such package", []string{"nope.TestX"}, ""),
		spectable.S("5.5", "MUST", "uncovered", nil, "why"),
	}
	problems, report := spectable.Check(t, "test", table, specPackages)
	if len(problems) != 3 {
		t.Fatalf("want 3 problems, got %q", problems)
	}
	if len(report) != 2 || !strings.Contains(report[0], "4 of 5") || !strings.Contains(report[1], "§5.5") {
		t.Fatalf("report %q", report)
	}
}
