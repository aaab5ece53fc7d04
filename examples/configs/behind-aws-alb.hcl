# wsalive behind an AWS Application Load Balancer (idle timeout 60 s by
# default) in front of a legacy chat server that never pings.
#
# The client heartbeat pings every 25 s of silence, well inside the ALB's
# 60 s, so the balancer never cuts an idle but healthy connection. A client
# that vanished (phone switched networks, laptop closed) is found within
# 25 s + 2 × 10 s = 45 s and the backend is told with 1001
# "client heartbeat timeout", so it can free the user's session.
listener {
  address = "0.0.0.0:8080"
}

admin {
  address = "127.0.0.1:9090"
}

route "chat" {
  path_prefix = "/chat"
  upstream    = "ws://127.0.0.1:3000/ws"
  nat_profile = "aws-alb"

  heartbeat "client" {
    interval   = "25s"
    timeout    = "10s"
    max_missed = 2
  }

  heartbeat "upstream" {
    interval   = "30s"
    timeout    = "5s"
    max_missed = 1
  }

  # Browsers cannot send protocol pings; the app sends this JSON instead and
  # the legacy server never answered it.
  app_ping {
    match = "{\"type\":\"ping\"}"
    reply = "{\"type\":\"pong\"}"
  }

  # Close sessions nobody uses, and recycle long-lived ones so load
  # rebalances across backend instances after a deploy.
  idle_timeout        = "30m"
  max_lifetime        = "12h"
  max_lifetime_jitter = "1h"
}
