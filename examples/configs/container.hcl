# The configuration baked into the container image: listen on every
# interface of the container, relay to a legacy service in the same pod or
# compose project. Mount your own file over /etc/wsalive/wsalive.hcl.
listener {
  address = "0.0.0.0:8080"
}

# /readyz, /healthz, /metrics, /stats, /drain. Not published by default;
# the image's HEALTHCHECK probes it on loopback. pprof stays off.
admin {
  address = "0.0.0.0:9090"
}

drain {
  delay      = "5s"
  window     = "30s"
  close_code = 1012
}

route "default" {
  upstream = "ws://127.0.0.1:3000"
}
