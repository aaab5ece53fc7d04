# Every liveness setting of a route, none left to its default.
listener {
  address = "127.0.0.1:8080"
}

route "chat" {
  upstream = "ws://127.0.0.1:3000"

  heartbeat "client" {
    enabled                = true
    interval               = "20s"
    timeout                = "10s"
    max_missed             = 2
    min_interval           = "10s"
    max_interval           = "50s"
    answer_pings           = false
    tcp_keepalive_idle     = "40s"
    tcp_keepalive_interval = "10s"
    tcp_keepalive_count    = 3
    tcp_user_timeout       = "40s"
  }

  heartbeat "upstream" {
    interval     = "30s"
    timeout      = "10s"
    max_missed   = 1
    answer_pings = true
  }

  nat_profile         = "aws-nlb"
  idle_timeout        = "1h"
  max_lifetime        = "24h"
  max_lifetime_jitter = "1h"

  app_ping {
    match = "{\"type\":\"ping\"}"
    reply = "{\"type\":\"pong\"}"
  }
}

# A heartbeat block that sets only some settings keeps the side's defaults
# for the others, and the TCP keepalive is derived from the result.
route "partial" {
  path_prefix      = "/partial"
  upstream         = "ws://127.0.0.1:3001"
  nat_idle_timeout = "4m"
  max_lifetime     = "2h"

  heartbeat "client" {
    timeout = "5s"
  }

  heartbeat "upstream" {
    enabled = false
  }
}
