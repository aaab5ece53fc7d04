# Client heartbeats that would let the idle limit in front of wsalive
# expire: each is reported at the setting to change.
listener {
  address = "127.0.0.1:8080"
}

route "too-slow" {
  path_prefix = "/too-slow"
  upstream    = "ws://127.0.0.1:3000"
  nat_profile = "aws-nlb"

  heartbeat "client" {
    interval = "6m"
  }
}

route "at-the-limit" {
  path_prefix = "/at-the-limit"
  upstream    = "ws://127.0.0.1:3000"
  nat_profile = "aws-alb"

  heartbeat "client" {
    interval = "60s"
  }
}

route "adaptive" {
  path_prefix = "/adaptive"
  upstream    = "ws://127.0.0.1:3000"
  nat_profile = "nginx"

  heartbeat "client" {
    min_interval = "10s"
    max_interval = "90s"
  }
}

route "disabled" {
  path_prefix = "/disabled"
  upstream    = "ws://127.0.0.1:3000"
  nat_profile = "azure-nat-gateway"

  heartbeat "client" {
    enabled = false
  }
}

route "defaults" {
  path_prefix      = "/defaults"
  upstream         = "ws://127.0.0.1:3000"
  nat_idle_timeout = "15s"
}

route "both" {
  path_prefix      = "/both"
  upstream         = "ws://127.0.0.1:3000"
  nat_idle_timeout = "350s"
  nat_profile      = "aws-nlb"
}

route "unknown" {
  path_prefix = "/unknown"
  upstream    = "ws://127.0.0.1:3000"
  nat_profile = "aws-nbl"
}
