# A sidecar in front of a legacy application on port 3000 that serves its
# pages, its API and a WebSocket endpoint on one port. wsalive takes every
# request for the application's public port: plain HTTP (pages, API,
# Server-Sent Events, uploads) is passed through with keep-alive, and
# WebSocket upgrades become pairs with heartbeats. One route serves all
# three, because the upgrade decision is made per request.
listener {
  address = "0.0.0.0:8080"
  # The cloud load balancer in front terminates TLS: believe its
  # X-Forwarded-* headers, and nobody else's.
  trusted_proxies   = ["10.0.0.0/8"]
  http_idle_timeout = "60s"
  max_connections   = 20000
}

limits {
  max_handshakes               = 4096
  max_handshakes_per_client_ip = 64
}

route "app" {
  upstream                = "ws://127.0.0.1:3000"
  max_body_size           = "25MiB" # uploads beyond this get 413
  allowed_origins         = ["https://app.example.com", "https://*.app.example.com"]
  max_pairs               = 10000
  max_pairs_per_client_ip = 50
  nat_profile             = "aws-alb"
}
