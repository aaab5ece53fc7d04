# Every front-door setting: forwarded headers, bounds on connections and
# handshakes, plain HTTP pass-through, origins and pair limits.
listener {
  address           = "127.0.0.1:8080"
  trusted_proxies   = ["10.0.0.0/8", "127.0.0.1", "2001:db8::/32"]
  max_connections   = 20000
  http_idle_timeout = "30s"
  max_header_lines  = 64
}

limits {
  max_handshakes               = 1000
  max_handshakes_per_client_ip = 10
}

route "app" {
  upstream                = "ws://127.0.0.1:3000"
  http                    = "proxy"
  max_body_size           = "10MiB"
  allowed_origins         = ["https://app.example.com", "https://*.Example.com:8443", "http://[::1]:3000"]
  require_origin          = true
  max_pairs               = 5000
  max_pairs_per_client_ip = 20
}

route "ws-only" {
  path_prefix = "/ws"
  upstream    = "ws://127.0.0.1:3001"
  http        = "reject"
}
