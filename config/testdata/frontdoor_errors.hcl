listener {
  address           = "127.0.0.1:8080"
  trusted_proxies   = ["10.0.0.1/8", "not-an-ip", 7]
  max_connections   = -1
  http_idle_timeout = "10ms"
  max_header_lines  = 3
}

limits {
  max_handshakes = 0
}

route "app" {
  upstream                = "ws://127.0.0.1:3000"
  http                    = "pass"
  max_body_size           = "1.5MiB"
  allowed_origins         = ["app.example.com", "https://a.*.example.com", "ftp://x.example.com", "https://x.example.com/path"]
  require_origin          = "yes"
  max_pairs               = 1.5
}
