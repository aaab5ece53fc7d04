// Package metrics is the seam between wsalive's moving parts and whatever
// watches them. The proxy server and the relay engine are handed a Metrics
// value (never a package global): the Prometheus implementation in
// production, Nop in tests and benchmarks that do not look.
//
// The interface is shaped for the hot path. A component resolves a Route
// handle once (per handshake, or once per pair when it attaches) and calls
// its methods without any label lookup. Per-frame figures are never
// reported per frame: the engine sums bytes and frames in the pair and
// reports them per loop round (Relayed), so a message costs no extra atomic
// operation.
//
// Label values are bounded by construction: route names come from the
// configuration (UnknownRoute for requests no route matched), sides and
// directions are the fixed names below, reasons are the relay's closed
// taxonomy, and results are "ok" or an HTTP status code. A client address
// is never a label.
package metrics

import "time"

// UnknownRoute is the route label of requests that matched no route.
const UnknownRoute = "_unknown"

// Side is one side of a pair, as a label value.
type Side uint8

const (
	Client Side = iota
	Upstream
)

// String returns the label value: "client" or "upstream".
func (s Side) String() string {
	if s == Client {
		return "client"
	}
	return "upstream"
}

// Direction is one way through a pair, as a label value.
type Direction uint8

const (
	ToUpstream Direction = iota
	ToClient
)

// String returns the label value: "to_upstream" or "to_client".
func (d Direction) String() string {
	if d == ToUpstream {
		return "to_upstream"
	}
	return "to_client"
}

// Metrics is what the server and the engine report to.
type Metrics interface {
	// Route returns the handle for one route's figures. Callers resolve
	// it once and keep it; it is safe for concurrent use.
	Route(name string) Route
	// ConfigReload counts a configuration reload attempt.
	ConfigReload(ok bool)
	// Draining says whether the process is draining.
	Draining(on bool)
}

// Route holds one route's figures.
type Route interface {
	// Handshake counts a WebSocket handshake that ended, with its result
	// ("ok", or the HTTP status sent to the client, e.g. "502") and how
	// long it took from the request head to the 101 or the error answer.
	Handshake(result string, took time.Duration)
	// HTTPRequest counts a plain HTTP request passed through, by the
	// status code answered.
	HTTPRequest(code int)
	// PairOpened and PairClosed follow a pair's life; reason is the
	// relay's close reason name (e.g. "client_heartbeat_timeout").
	PairOpened()
	PairClosed(reason string)
	// Relayed adds bytes and frames that crossed toward dir since the
	// last call. Called per loop round with sums, never per frame.
	Relayed(dir Direction, bytes, frames uint64)
	// Ping counts a heartbeat ping sent toward side; Pong one of ours
	// answered, with its round-trip time; Miss a ping unanswered within
	// its timeout.
	Ping(side Side)
	Pong(side Side, rtt time.Duration)
	Miss(side Side)
}

// ResumeCounter is what a Metrics also implements when it counts the
// resumes of resumable sessions; the engine reports to it if it does (an
// optional interface, so that other Metrics need not change).
type ResumeCounter interface {
	// Resume counts a resume attempt by result: "resumed", or
	// "refused_<code>" with the refusal's close code (4900-4906).
	Resume(result string)
}

// ResumeResults lists every result Resume is called with.
var ResumeResults = []string{"resumed", "refused_4900", "refused_4901", "refused_4902",
	"refused_4903", "refused_4904", "refused_4905", "refused_4906"}

// Nop is a Metrics that records nothing.
type Nop struct{}

var _ Metrics = Nop{}

func (Nop) Route(string) Route { return nopRoute{} }
func (Nop) ConfigReload(bool)  {}
func (Nop) Draining(bool)      {}

type nopRoute struct{}

func (nopRoute) Handshake(string, time.Duration)   {}
func (nopRoute) HTTPRequest(int)                   {}
func (nopRoute) PairOpened()                       {}
func (nopRoute) PairClosed(string)                 {}
func (nopRoute) Relayed(Direction, uint64, uint64) {}
func (nopRoute) Ping(Side)                         {}
func (nopRoute) Pong(Side, time.Duration)          {}
func (nopRoute) Miss(Side)                         {}
