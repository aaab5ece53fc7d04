package wsload

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/config"
)

// The blackhole modes measure how long a proxy takes to notice a peer that
// vanished without FIN or RST (a pulled cable, a laptop lid, a NAT that
// forgot the mapping), and what it tells the surviving side.
//
// blackhole-client: the backend (bhBackend) runs on 127.0.0.1; the proxy
// under test (wsalive, a child process) listens on the host side of a veth
// pair; N clients connect from inside a network namespace. Once every pair
// is up end to end, T0 is noted and iptables in the namespace drops every
// packet in and out: the clients vanish. The backend records, per
// connection, when the proxy closed it and with which close frame (or EOF).
//
// blackhole-upstream: the mirror. The backend listens inside the namespace,
// the proxy's upstream is the namespace side of the veth, the clients are
// on loopback, and the clients record when the proxy closed them.
//
// Detection time is that moment minus T0. The expected bound, for a side
// with heartbeat interval I, timeout T and max_missed M, is I + T×M (plus
// the proxy's timer tick): the peer was last heard at or before T0.

// Everything the blackhole modes create is named with netnsPrefix and the
// creating process's PID, so that leftovers of a killed run are
// identifiable (and removed by the next run, see cleanupStale):
//
//	network namespace  wsab-<pid>-<seq>
//	veth, host side    wsab<pid>h<seq>   (interface names are at most 15
//	veth, netns side   wsab<pid>n<seq>    bytes, hence no dashes)
//	temporary dir      $TMPDIR/wsab-<pid>-* (proxy configuration and log)
const netnsPrefix = "wsab"

// Placeholders of the proxy configuration template (and, for {{config}}
// and {{dir}}, of the proxy's command line and environment).
const (
	placeholderListen       = "{{listen}}"
	placeholderListenHost   = "{{listen_host}}"
	placeholderUpstream     = "{{upstream}}"
	placeholderUpstreamAddr = "{{upstream_addr}}"
	placeholderAdmin        = "{{admin}}"
	placeholderDir          = "{{dir}}"
	placeholderConfig       = "{{config}}"
)

// Heartbeat of the measured side in DefaultBlackholeTemplate.
const (
	defaultBlackholeInterval  = 5 * time.Second
	defaultBlackholeTimeout   = 3 * time.Second
	defaultBlackholeMaxMissed = 1
)

// maxNetnsDialThreads bounds the OS threads that dial from inside the
// namespace in blackhole-client mode.
const maxNetnsDialThreads = 64

// backendUpTimeout bounds the wait, after the dial phase, for the backend
// to have every pair upgraded.
const backendUpTimeout = 10 * time.Second

// DefaultBlackholeTemplate returns the proxy configuration the blackhole
// mode of side ("client" or "upstream") uses when none is given: one
// listener, one route, and a heartbeat toward side of interval 5s, timeout
// 3s and max_missed 1 (a bound of 8 s); the other side keeps its defaults.
func DefaultBlackholeTemplate(side string) string {
	return fmt.Sprintf(`# wsload blackhole-%[1]s: wsalive between the load tool and its backend.
listener {
  address = "{{listen}}"
}

route "blackhole" {
  upstream = "{{upstream}}"

  heartbeat %[1]q {
    interval   = %[2]q
    timeout    = %[3]q
    max_missed = %[4]d
  }
}
`, side, defaultBlackholeInterval, defaultBlackholeTimeout, defaultBlackholeMaxMissed)
}

// ExpandTemplate substitutes the placeholders of a proxy configuration
// template: {{listen}} (host:port the proxy listens on), {{upstream}}
// (ws://host:port of the backend), {{upstream_addr}} (the same without
// the scheme, for proxies that want host:port) and {{admin}} (a free
// loopback host:port, for templates that want an admin endpoint).
func ExpandTemplate(tmpl, listen, upstream, admin string) string {
	return ExpandVars(tmpl, TemplateVars{Listen: listen, Upstream: upstream, Admin: admin})
}

// TemplateVars are the values of the placeholders of a proxy
// configuration template.
type TemplateVars struct {
	// Listen is the host:port the proxy listens on: {{listen}}; its host
	// alone is {{listen_host}}.
	Listen string
	// Upstream is the backend's ws://host:port: {{upstream}}.
	Upstream string
	// UpstreamAddr is the backend's host:port: {{upstream_addr}}; empty
	// means Upstream without its scheme.
	UpstreamAddr string
	// Admin is a free loopback host:port: {{admin}}.
	Admin string
	// Dir is a directory the proxy may write to (pid file, logs,
	// temporary files): {{dir}}.
	Dir string
}

// ExpandVars substitutes every placeholder of tmpl with v.
func ExpandVars(tmpl string, v TemplateVars) string {
	addr := v.UpstreamAddr
	if addr == "" {
		addr = strings.TrimPrefix(strings.TrimPrefix(v.Upstream, "ws://"), "wss://")
		addr = strings.TrimSuffix(addr, "/")
	}
	host, _, err := net.SplitHostPort(v.Listen)
	if err != nil {
		host = v.Listen
	}
	return strings.NewReplacer(
		placeholderListenHost, host,
		placeholderListen, v.Listen,
		placeholderUpstreamAddr, addr,
		placeholderUpstream, v.Upstream,
		placeholderAdmin, v.Admin,
		placeholderDir, v.Dir,
	).Replace(tmpl)
}

// heartbeatBound reads the heartbeat of side from a proxy configuration:
// a description of it and its detection bound, interval + timeout ×
// max_missed (the longest interval when the interval is adaptive); 0 when
// the heartbeat is off.
func heartbeatBound(text, side string) (string, time.Duration, error) {
	c, err := config.Parse("proxy-config.hcl", []byte(text))
	if err != nil {
		return "", 0, err
	}
	if len(c.Routes) == 0 {
		return "", 0, fmt.Errorf("no route")
	}
	r := c.Routes[0]
	hb := r.ClientHeartbeat
	if side == "upstream" {
		hb = r.UpstreamHeartbeat
	}
	var where string
	if len(c.Routes) > 1 {
		where = fmt.Sprintf(" (route %q, the first of %d)", r.Name, len(c.Routes))
	}
	if !hb.Enabled {
		return fmt.Sprintf("%s heartbeat off%s", side, where), 0, nil
	}
	desc := fmt.Sprintf("%s interval=%s timeout=%s max_missed=%d", side, hb.Interval, hb.Timeout, hb.MaxMissed)
	if hb.MaxInterval > 0 {
		desc += fmt.Sprintf(" (adaptive %s-%s)", hb.MinInterval, hb.MaxInterval)
	}
	return desc + where, hb.DetectionBound(), nil
}

// BlackholeStats is what a blackhole mode measured.
type BlackholeStats struct {
	// Side is the side that vanished: "client" or "upstream".
	Side string `json:"side"`
	// Netns is the network namespace the vanishing side lived in.
	Netns string `json:"netns"`
	// ProxyListen and Upstream are the proxy's addresses in the run.
	ProxyListen string `json:"proxy_listen"`
	Upstream    string `json:"upstream"`
	// ProxyPID is the process ID the proxy had.
	ProxyPID int `json:"proxy_pid"`
	// Heartbeat describes the measured side's heartbeat, read from the
	// proxy configuration; empty when it could not be read.
	Heartbeat string `json:"heartbeat,omitempty"`
	// BoundS is the detection bound compared against: -bound, or
	// interval + timeout × max_missed from the configuration (BoundFrom
	// says which); 0 when unknown.
	BoundS    float64 `json:"bound_s"`
	BoundFrom string  `json:"bound_from,omitempty"`

	// Connected is the number of pairs up end to end at T0.
	Connected int `json:"connected"`
	// EndedBefore counts pairs that ended before the blackhole.
	EndedBefore int `json:"ended_before_blackhole"`
	// Detected counts pairs the proxy closed within MaxWaitS of T0;
	// Undetected the rest.
	Detected   int `json:"detected"`
	Undetected int `json:"undetected"`
	// OverBound counts detections later than BoundS.
	OverBound int `json:"over_bound"`
	// BlackholeApplyMs is how long installing the DROP rules took; T0 is
	// when it began.
	BlackholeApplyMs float64 `json:"blackhole_apply_ms"`
	MaxWaitS         float64 `json:"max_wait_s"`
	// WaitedS is how long after T0 the run waited.
	WaitedS float64 `json:"waited_s"`

	// Detection time percentiles (nearest rank, exact), in seconds.
	MinS  float64 `json:"min_s"`
	MeanS float64 `json:"mean_s"`
	P50S  float64 `json:"p50_s"`
	P90S  float64 `json:"p90_s"`
	P99S  float64 `json:"p99_s"`
	MaxS  float64 `json:"max_s"`

	// Closes counts how the detected pairs ended, as the surviving side
	// saw it: "1001 client heartbeat timeout", "EOF without close frame".
	Closes map[string]int `json:"closes"`
	// ClientPingsAnswered counts pings the clients answered before the
	// blackhole (the proxy's client heartbeat at work).
	ClientPingsAnswered int64 `json:"client_pings_answered"`

	// Detections are the detected pairs, fastest first (for WriteCSV).
	Detections []Detection `json:"-"`
}

// Detection is one pair the proxy closed after the blackhole.
type Detection struct {
	// Seconds after T0.
	Seconds float64
	// Close is what the surviving side received.
	Close string
}

// WriteCSV writes the detections, fastest first, as CSV with a header:
// rank, detection_s, cdf (rank over the pairs measured) and close.
func (st *BlackholeStats) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"rank", "detection_s", "cdf", "close"})
	measured := max(st.Connected-st.EndedBefore, 1)
	for i, d := range st.Detections {
		cw.Write([]string{
			strconv.Itoa(i + 1),
			strconv.FormatFloat(d.Seconds, 'f', 6, 64),
			strconv.FormatFloat(float64(i+1)/float64(measured), 'f', 6, 64),
			d.Close,
		})
	}
	cw.Flush()
	return cw.Error()
}

func (st *BlackholeStats) writeText(b *strings.Builder) {
	fmt.Fprintf(b, "blackhole:   %s side vanished: DROP in netns %s (applied in %.0fms from T0)\n",
		st.Side, st.Netns, st.BlackholeApplyMs)
	fmt.Fprintf(b, "proxy:       pid %d, listens on %s, upstream %s\n", st.ProxyPID, st.ProxyListen, st.Upstream)
	if st.Heartbeat != "" {
		fmt.Fprintf(b, "heartbeat:   %s\n", st.Heartbeat)
	}
	switch st.BoundFrom {
	case "flag":
		fmt.Fprintf(b, "bound:       %.3gs (from -bound)\n", st.BoundS)
	case "config":
		fmt.Fprintf(b, "bound:       %.3gs (interval + timeout x max_missed, plus up to the proxy's timer tick)\n", st.BoundS)
	default:
		fmt.Fprintf(b, "bound:       unknown\n")
	}
	fmt.Fprintf(b, "pairs:       %d up at T0, %d ended before the blackhole\n", st.Connected, st.EndedBefore)
	fmt.Fprintf(b, "detected:    %d; undetected after %.3gs: %d; over the bound: %d\n",
		st.Detected, st.WaitedS, st.Undetected, st.OverBound)
	if st.Detected > 0 {
		fmt.Fprintf(b, "detection:   p50 %.3fs  p90 %.3fs  p99 %.3fs  max %.3fs  (min %.3fs, mean %.3fs)\n",
			st.P50S, st.P90S, st.P99S, st.MaxS, st.MinS, st.MeanS)
	}
	fmt.Fprintf(b, "closes seen by the %s side:\n", otherSide(st.Side))
	b.WriteString(formatErrors(st.Closes))
}

func otherSide(side string) string {
	if side == "client" {
		return "upstream"
	}
	return "client"
}

// bhClient is one client connection of a blackhole run.
type bhClient struct {
	clientConn
	r io.Reader
}

// blackholeRun is the state of one blackhole run; teardown undoes it.
type blackholeRun struct {
	cfg  Config
	side string
	errs *errorCounter

	ns      *netns
	tmpDir  string
	backend *bhBackend
	proxy   *proxyProc
	// rec records the ends seen by the surviving side: the backend's for
	// blackhole-client, the clients' for blackhole-upstream.
	rec *endRecorder

	mu      sync.Mutex
	clients []*bhClient
	wg      sync.WaitGroup
	// frozen stops the clients from writing: set at the blackhole when
	// they are the side that vanished.
	frozen  atomic.Bool
	pings   atomic.Int64
	outside atomic.Int64
}

func runBlackhole(ctx context.Context, cfg Config, sum *Summary, errs *errorCounter) error {
	side := cfg.Mode.blackholeSide()
	log := cfg.Logger
	st := &BlackholeStats{Side: side, MaxWaitS: cfg.MaxWait.Seconds(), Closes: map[string]int{}}

	cleanupStale(log)
	ns, err := newNetns(log)
	if err != nil {
		return fmt.Errorf("creating the network namespace: %w", err)
	}
	r := &blackholeRun{cfg: cfg, side: side, errs: errs, ns: ns, rec: newEndRecorder()}
	defer r.teardown()
	st.Netns = ns.name

	// The backend: on loopback, or inside the namespace when it is the
	// side that vanishes.
	var ln net.Listener
	if side == "client" {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	} else {
		err = ns.do(func() error {
			var err error
			ln, err = net.Listen("tcp", net.JoinHostPort(ns.nsIP.String(), "0"))
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("backend listener: %w", err)
	}
	var backendRec *endRecorder
	if side == "client" {
		backendRec = r.rec
	}
	r.backend = serveBackend(ln, backendRec)

	// The proxy: listening on the host side of the veth (the clients are
	// in the namespace) or on loopback.
	listenIP := "127.0.0.1"
	if side == "client" {
		listenIP = ns.hostIP.String()
	}
	st.Upstream = "ws://" + ln.Addr().String()
	if r.tmpDir, err = os.MkdirTemp("", fmt.Sprintf("%s-%d-", netnsPrefix, os.Getpid())); err != nil {
		return err
	}
	// Proxies that drop privileges in their workers (nginx) still need to
	// reach their directory.
	os.Chmod(r.tmpDir, 0o755)
	logPath := cfg.ProxyLog
	if logPath == "" {
		logPath = filepath.Join(r.tmpDir, "proxy.log")
	}
	argv := cfg.ProxyCmd
	if len(argv) == 0 {
		argv = []string{cfg.ProxyBin, "run", "-config", placeholderConfig}
	}
	// The ports were free a moment ago; another process may take one
	// before the proxy binds it (the proxy then exits), so the proxy is
	// started again on fresh ports, a few times at most.
	var listen, text string
	for attempt := 1; ; attempt++ {
		if listen, err = freeAddr(listenIP); err != nil {
			return err
		}
		admin, err := freeAddr("127.0.0.1")
		if err != nil {
			return err
		}
		text = ExpandVars(cfg.ProxyConfig, TemplateVars{Listen: listen, Upstream: st.Upstream, Admin: admin, Dir: r.tmpDir})
		if r.proxy, err = startProxy(proxySpec{
			argv:    argv,
			env:     cfg.ProxyEnv,
			dir:     r.tmpDir,
			cfgName: cfg.ProxyConfigName,
			cfgText: text,
			logPath: logPath,
		}, log); err != nil {
			return err
		}
		err = r.proxy.waitAccepting(ctx, listen)
		if err == nil && !r.proxy.Exited() {
			break
		}
		if err == nil {
			err = fmt.Errorf("a process answered on %s, but the proxy exited (%v); its log:\n%s", listen, r.proxy.Err(), r.proxy.LogTail(20))
		}
		exited := r.proxy.Exited()
		r.proxy.stop()
		if !exited || attempt == proxyStartAttempts || ctx.Err() != nil {
			return err
		}
		log.Warn("the proxy exited at start; starting it again on fresh ports", "attempt", attempt, "err", err)
	}
	st.ProxyListen = listen
	st.ProxyPID = r.proxy.PID()

	if strings.HasSuffix(cfg.ProxyConfigName, ".hcl") {
		desc, bound, err := heartbeatBound(text, side)
		if err != nil {
			log.Warn("could not read the heartbeat from the proxy configuration; the bound is unknown", "err", err)
		} else {
			st.Heartbeat = desc
			if bound > 0 {
				st.BoundS, st.BoundFrom = bound.Seconds(), "config"
			}
		}
	}
	if cfg.Bound > 0 {
		st.BoundS, st.BoundFrom = cfg.Bound.Seconds(), "flag"
	}

	// The clients: from inside the namespace when they are the side that
	// vanishes.
	cfg.URL = "ws://" + listen + "/"
	sum.URL = cfg.URL
	stopPool := func() {}
	if side == "client" {
		run, stop, err := ns.pool(min(cfg.DialConcurrency, cfg.N, maxNetnsDialThreads))
		if err != nil {
			return err
		}
		stopPool = stop
		defer stop()
		cfg.SrcIPs = "off"
		cfg.dialWrap = run
	}
	var lat Histogram
	res, err := dialAll(ctx, cfg, &lat, errs, func(_ int, c net.Conn, rd io.Reader) {
		if side == "client" {
			// A socket made outside the namespace would reach the proxy
			// too (the host address is local) and never vanish.
			if la, ok := c.LocalAddr().(*net.TCPAddr); !ok || !la.IP.Equal(ns.nsIP) {
				r.outside.Add(1)
				c.Close()
				return
			}
		}
		bc := &bhClient{clientConn: clientConn{conn: c}, r: rd}
		r.mu.Lock()
		r.clients = append(r.clients, bc)
		r.mu.Unlock()
		r.wg.Add(1)
		go r.holdClient(bc)
	})
	stopPool()
	if err != nil {
		return err
	}
	sum.setDial(res, &lat)
	if n := r.outside.Load(); n > 0 {
		return fmt.Errorf("%d client sockets were not created inside the namespace", n)
	}
	sum.Blackhole = st
	if res.canceled {
		return nil
	}
	if res.opened == 0 {
		errs.add("no connection opened; nothing to blackhole")
		return nil
	}

	// Every pair up end to end: the backend has upgraded one connection
	// per client.
	upBy := time.Now().Add(backendUpTimeout)
	for int(r.backend.upgraded.Load()) < res.opened {
		if time.Now().After(upBy) {
			log.Warn("the backend has fewer connections than the clients",
				"backend", r.backend.upgraded.Load(), "clients", res.opened)
			break
		}
		select {
		case <-ctx.Done():
			sum.Interrupted = true
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
	st.Connected = min(res.opened, int(r.backend.upgraded.Load()))
	if side == "upstream" {
		st.Connected = res.opened
	}
	if cfg.Ready != nil {
		cfg.Ready(res.opened, res.failed)
	}

	// The blackhole.
	if side == "client" {
		r.frozen.Store(true)
	}
	st.ClientPingsAnswered = r.pings.Load()
	t0 := time.Now()
	if err := ns.blackhole(); err != nil {
		return err
	}
	st.BlackholeApplyMs = float64(time.Since(t0).Microseconds()) / 1000
	log.Info("blackhole in place; waiting for the proxy to notice", "side", side, "pairs", st.Connected,
		"bound", time.Duration(st.BoundS*float64(time.Second)), "max_wait", cfg.MaxWait)

	deadline := time.NewTimer(time.Until(t0.Add(cfg.MaxWait)))
	defer deadline.Stop()
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
wait:
	for r.rec.count() < st.Connected {
		select {
		case <-r.rec.changed:
		case <-progress.C:
			log.Info("waiting", "ended", r.rec.count(), "of", st.Connected, "after", time.Since(t0).Round(time.Millisecond))
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			sum.Interrupted = true
			break wait
		}
	}
	st.WaitedS = time.Since(t0).Seconds()
	ends := r.rec.stop()
	if exited, err := r.proxy.exited(); exited {
		errs.add("the proxy exited during the run: " + exitText(err))
	}
	st.summarize(ends, t0, cfg.MaxWait, errs)
	return nil
}

// summarize turns the recorded ends into detection statistics.
func (st *BlackholeStats) summarize(ends []connEnd, t0 time.Time, maxWait time.Duration, errs *errorCounter) {
	for _, e := range ends {
		d := e.at.Sub(t0)
		switch {
		case d < 0:
			st.EndedBefore++
			errs.add("ended before the blackhole: " + e.what)
		case d <= maxWait:
			st.Detections = append(st.Detections, Detection{Seconds: d.Seconds(), Close: e.what})
			st.Closes[e.what]++
		}
	}
	slices.SortFunc(st.Detections, func(a, b Detection) int {
		switch {
		case a.Seconds < b.Seconds:
			return -1
		case a.Seconds > b.Seconds:
			return 1
		}
		return strings.Compare(a.Close, b.Close)
	})
	st.Detected = len(st.Detections)
	st.Undetected = max(st.Connected-st.EndedBefore-st.Detected, 0)
	for range st.Undetected {
		errs.add("not detected within max-wait")
	}
	if st.Detected == 0 {
		return
	}
	var total float64
	for _, d := range st.Detections {
		total += d.Seconds
		if st.BoundS > 0 && d.Seconds > st.BoundS {
			st.OverBound++
		}
	}
	st.MinS = st.Detections[0].Seconds
	st.MaxS = st.Detections[st.Detected-1].Seconds
	st.MeanS = total / float64(st.Detected)
	st.P50S = st.quantile(0.50)
	st.P90S = st.quantile(0.90)
	st.P99S = st.quantile(0.99)
}

// quantile returns the nearest-rank quantile q of the sorted detections.
func (st *BlackholeStats) quantile(q float64) float64 {
	n := len(st.Detections)
	i := min(max(int(math.Ceil(q*float64(n)))-1, 0), n-1)
	return st.Detections[i].Seconds
}

// holdClient reads one client connection until it ends: it answers pings
// (until frozen), and records the end when the clients are the surviving
// side.
func (r *blackholeRun) holdClient(c *bhClient) {
	defer r.wg.Done()
	ended := func(what string) {
		if r.side == "upstream" {
			r.rec.record(what)
		}
	}
	var ctl [ws.MaxControlFramePayloadSize]byte
	for {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			ended(readEndText(err))
			return
		}
		if !h.OpCode.IsControl() {
			if _, err := io.CopyN(io.Discard, c.r, h.Length); err != nil {
				ended(readEndText(err))
				return
			}
			continue
		}
		if h.Length > int64(len(ctl)) {
			ended(fmt.Sprintf("protocol error: control frame of %d bytes", h.Length))
			return
		}
		p := ctl[:h.Length]
		if _, err := io.ReadFull(c.r, p); err != nil {
			ended(readEndText(err))
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			if !r.frozen.Load() {
				r.pings.Add(1)
				c.writeFrame(clientFrame(ws.OpPong, p), time.Now().Add(r.cfg.CloseTimeout))
			}
		case ws.OpClose:
			ended(closeText(p))
			if !r.frozen.Load() {
				c.writeFrame(closeFrame(closeCodeOf(p)), time.Now().Add(r.cfg.CloseTimeout))
				// Wait for the proxy to close TCP first.
				c.conn.SetReadDeadline(time.Now().Add(r.cfg.CloseTimeout))
				io.Copy(io.Discard, c.r)
			}
			return
		}
	}
}

// abortClients resets every client connection.
func (r *blackholeRun) abortClients() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.clients {
		abortConn(c.conn)
	}
}

// teardown undoes the run in an order that leaves nothing behind: the
// DROP rules go first so that the sockets of the vanished side can reset
// their peers (the proxy's sockets then end at once instead of
// retransmitting into the void), then the proxy stops, then the rest
// closes and the namespace and veth pair are deleted.
func (r *blackholeRun) teardown() {
	r.rec.stop()
	r.frozen.Store(true)
	if err := r.ns.unblackhole(); err != nil {
		r.cfg.Logger.Error("removing the DROP rules", "err", err)
	}
	if r.side == "client" {
		r.abortClients()
	} else if r.backend != nil {
		r.backend.abortAll()
	}
	if r.proxy != nil {
		r.proxy.stop()
	}
	r.abortClients()
	r.wg.Wait()
	if r.backend != nil {
		r.backend.close()
	}
	r.ns.close()
	if r.tmpDir != "" {
		os.RemoveAll(r.tmpDir)
	}
}

// proxyStartAttempts is how often a blackhole run starts its proxy on
// fresh ports when it exits at start (it lost a port to another process).
const proxyStartAttempts = 3

// freeAddr returns ip:port with a port that was free a moment ago.
func freeAddr(ip string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return "", fmt.Errorf("finding a free port on %s: %w", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
