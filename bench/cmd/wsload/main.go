// Command wsload opens many WebSocket connections to a URL and holds them
// idle or drives verified echo traffic over them. See package
// bench/wsload for what each mode measures.
//
// Usage:
//
//	wsload -mode idle -n 9000 -url ws://127.0.0.1:8080/ -hold 60s
//	       [-rate 2000] [-dial-concurrency 256] [-dial-timeout 10s]
//	       [-src-ips auto] [-ready-file PATH] [-close-timeout 5s]
//	wsload -mode echo -n 200 -inflight 1 -size 1024 -duration 10s
//	       -url ws://127.0.0.1:8080/ [same dial flags]
//	wsload -mode churn -n 20000 -rate 1000 -size 64 -url ws://127.0.0.1:8080/
//	wsload -mode floor -size 2 -reply-size 6 -duration 2s
//
// -client gorilla runs the idle, echo and churn modes with
// gorilla/websocket's client instead of wsload's own (gobwas/ws).
//
//	wsload -mode blackhole-client -proxy-bin PATH [-proxy-config TEMPLATE]
//	       [-n 1000] [-max-wait 60s] [-bound 8s] [-csv FILE] [-proxy-log FILE]
//	wsload -mode blackhole-upstream (same flags)
//	wsload -mode blackhole-client -proxy-cmd "nginx -p {{dir}} -c {{config}}"
//	       -proxy-config nginx.conf.tmpl -proxy-config-name nginx.conf [-proxy-env K=V,...]
//
// The blackhole modes (root only: they create a network namespace, a veth
// pair and iptables rules, and remove them on exit, SIGINT included) start
// the proxy themselves with the template's {{listen}} and {{upstream}}
// filled in, make one side of every pair vanish without FIN or RST, and
// measure how long the proxy takes to close the pair toward the other
// side. -url is not used there.
//
// Output, on stdout: a line "READY n=OPENED failed=FAILED" once every dial
// has ended (also written to -ready-file, if given, so a driving script can
// wait for it and take its measurements), then a human summary, then a
// one-line JSON summary as the last line. Progress goes to stderr.
//
// SIGINT or SIGTERM ends the run early and still closes every connection
// cleanly; a second one exits at once.
//
// Exit status: 0 for a clean run, 1 when anything failed (see "errors" in
// the summary), 2 for bad usage.
//
// One process holds at most its RLIMIT_NOFILE hard limit of connections,
// minus a few; with the 20,000 limit of the benchmark machines, run N above
// about 18,000 as several processes, e.g. two of -n 9000.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wsalive/wsalive/bench/wsload"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		cfg       wsload.Config
		mode      string
		readyFile string
		verbose   bool
		proxyTmpl string
		proxyCmd  string
		proxyEnv  string
		csvFile   string
	)
	flag.StringVar(&mode, "mode", "idle", "idle: hold connections without traffic; echo: verified echo traffic; churn: each connection opens, echoes one message and closes; floor: CPU of bare loopback write+read round trips; blackhole-client, blackhole-upstream: time for a proxy to notice a side that vanished")
	flag.StringVar(&cfg.Client, "client", wsload.ClientGobwas, "WebSocket client of the idle, echo and churn modes: gobwas (wsload's own) or gorilla (gorilla/websocket)")
	flag.IntVar(&cfg.ReplySize, "reply-size", 0, "floor: bytes of the answer to each write of -size bytes")
	flag.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8080/", "WebSocket URL to connect to")
	flag.IntVar(&cfg.N, "n", 100, "number of connections (blackhole modes: default 1000)")
	flag.Float64Var(&cfg.Rate, "rate", wsload.DefaultRate, "new connections per second (negative: unlimited)")
	flag.IntVar(&cfg.DialConcurrency, "dial-concurrency", wsload.DefaultDialConcurrency, "dials (connect plus handshake) in flight at most")
	flag.DurationVar(&cfg.DialTimeout, "dial-timeout", wsload.DefaultDialTimeout, "timeout of one connect plus handshake")
	flag.StringVar(&cfg.SrcIPs, "src-ips", wsload.DefaultSrcIPs, `local addresses 127.0.0.X to cycle through: "auto" (2-250 for a loopback target), "off", or octets like "2-250" or "2-9,20"`)
	flag.DurationVar(&cfg.Hold, "hold", 60*time.Second, "idle: how long to hold the connections (0: until SIGINT)")
	flag.IntVar(&cfg.Inflight, "inflight", wsload.DefaultInflight, "echo: messages in flight per connection")
	flag.IntVar(&cfg.Size, "size", wsload.DefaultSize, "echo, churn: payload bytes per message; floor: bytes per write")
	flag.DurationVar(&cfg.Duration, "duration", wsload.DefaultDuration, "echo: how long to send; floor: how long to measure")
	flag.DurationVar(&cfg.CloseTimeout, "close-timeout", wsload.DefaultCloseTimeout, "bound on the final close handshake and the last echoes")
	flag.StringVar(&cfg.ProxyBin, "proxy-bin", "", "blackhole: the wsalive binary to start")
	flag.StringVar(&proxyTmpl, "proxy-config", "", "blackhole: proxy configuration template with {{listen}} and {{upstream}} (and optionally {{admin}}); default: a heartbeat of 5s/3s/1 toward the vanishing side")
	flag.StringVar(&proxyCmd, "proxy-cmd", "", `blackhole: the proxy's command line instead of "PROXY-BIN run -config {{config}}", split at spaces; {{config}} is the expanded configuration, {{dir}} the run's temporary directory (e.g. "nginx -p {{dir}} -c {{config}} -e {{dir}}/error.log")`)
	flag.StringVar(&proxyEnv, "proxy-env", "", "blackhole: NAME=VALUE pairs, comma-separated, added to the proxy's environment ({{dir}} is substituted)")
	flag.StringVar(&cfg.ProxyConfigName, "proxy-config-name", "", `blackhole: file name of the expanded configuration in the temporary directory (default "wsalive.hcl"; only *.hcl is read for the heartbeat bound)`)
	flag.StringVar(&cfg.ProxyLog, "proxy-log", "", "blackhole: write the proxy's output to this file (default: a temporary file, removed)")
	flag.DurationVar(&cfg.MaxWait, "max-wait", wsload.DefaultMaxWait, "blackhole: how long to wait for the proxy to notice every vanished peer")
	flag.DurationVar(&cfg.Bound, "bound", 0, "blackhole: detection bound to compare against (default: interval + timeout x max_missed from the configuration)")
	flag.StringVar(&csvFile, "csv", "", "blackhole: write the sorted detection times to this CSV file")
	flag.StringVar(&readyFile, "ready-file", "", "write the READY line to this file too, once every dial has ended")
	flag.BoolVar(&verbose, "v", false, "debug logging")
	var caFile string
	flag.StringVar(&caFile, "ca-file", "", "wss://: trust the PEM certificates in this file instead of the system's roots; TLS 1.3 with X25519 only, a full handshake per connection")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "wsload: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		return 2
	}
	cfg.Mode = wsload.Mode(mode)
	if caFile != "" {
		tc, err := wsload.BenchTLSConfig(caFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wsload:", err)
			return 2
		}
		cfg.TLSConfig = tc
	}
	blackhole := cfg.Mode == wsload.ModeBlackholeClient || cfg.Mode == wsload.ModeBlackholeUpstream
	if blackhole {
		nSet := false
		flag.Visit(func(f *flag.Flag) { nSet = nSet || f.Name == "n" })
		if !nSet {
			cfg.N = 1000
		}
		cfg.ProxyCmd = strings.Fields(proxyCmd)
		for e := range strings.SplitSeq(proxyEnv, ",") {
			if e = strings.TrimSpace(e); e != "" {
				cfg.ProxyEnv = append(cfg.ProxyEnv, e)
			}
		}
		if proxyTmpl != "" {
			b, err := os.ReadFile(proxyTmpl)
			if err != nil {
				fmt.Fprintln(os.Stderr, "wsload:", err)
				return 2
			}
			cfg.ProxyConfig = string(b)
		}
	}

	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log

	soft, hard, err := wsload.RaiseFileLimit()
	if err != nil {
		log.Warn("could not raise the open-files limit", "err", err)
	} else {
		log.Debug("open-files limit", "soft", soft, "hard", hard)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		if blackhole {
			// Signals stay caught: the namespace, the veth pair, the
			// iptables rules and the proxy must go, and that takes a few
			// seconds at most.
			log.Info("interrupted; cleaning up (proxy, namespace, veth, iptables rules)")
			return
		}
		// From now on a second signal has its default effect: exit at once.
		stop()
		log.Info("interrupted; closing connections")
	}()

	cfg.Ready = func(opened, failed int) {
		line := fmt.Sprintf("READY n=%d failed=%d\n", opened, failed)
		os.Stdout.WriteString(line)
		if readyFile != "" {
			if err := writeFileAtomic(readyFile, line); err != nil {
				log.Error("writing ready file", "path", readyFile, "err", err)
			}
		}
	}

	sum, err := wsload.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		return 2
	}
	if csvFile != "" && sum.Blackhole != nil {
		if err := writeCSV(csvFile, sum.Blackhole); err != nil {
			log.Error("writing the CSV", "path", csvFile, "err", err)
		}
	}
	sum.WriteText(os.Stdout)
	sum.WriteJSON(os.Stdout)
	if sum.Errors > 0 {
		return 1
	}
	return 0
}

func writeCSV(path string, st *wsload.BlackholeStats) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := st.WriteCSV(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeFileAtomic writes data to path through a rename, so that a script
// polling for the file never reads it half written.
func writeFileAtomic(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".wsload-ready-*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
