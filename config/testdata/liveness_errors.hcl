# One bad liveness setting per line: every one must be reported.
listener {
  address = "127.0.0.1:8080"
}

route "default" {
  upstream            = "ws://127.0.0.1:3000"
  idle_timeout        = "-5m"
  max_lifetime_jitter = "1h"

  heartbeat "client" {
    interval     = "0s"
    timeout      = "25h"
    max_missed   = 0
    min_interval = "10s"
    tcp_keepalive_idle  = "500ms"
    tcp_keepalive_count = 51
    tcp_user_timeout    = "100ms"
  }

  heartbeat "client" {
    interval = "10s"
  }

  heartbeat "server" {
    interval = "10s"
  }

  heartbeat "upstream" {
    enabled      = "no"
    min_interval = "40s"
    max_interval = "50s"
  }

  app_ping {
    match = ""
  }
}
