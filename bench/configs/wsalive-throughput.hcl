# wsalive for the throughput, latency and handshake scenarios: one event
# loop (and GOMAXPROCS=1 from the environment), heartbeats at their
# defaults (client 20s/10s/2, upstream 30s/10s/1). The admin endpoint is
# there for pprof; the harness does not poll it during a measurement.
# Started as: GOMAXPROCS=1 wsalive run -config FILE -log-level warn
listener {
  address = "{{listen}}"
}

admin {
  address = "{{admin}}"
}

engine {
  loops = 1
}

route "bench" {
  upstream = "{{upstream}}"
}
