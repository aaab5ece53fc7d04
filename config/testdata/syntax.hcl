# Syntax errors stop before any setting is checked; each is reported.
listener {
  address          = "127.0.0.1:8080"
  max_header_bytes = 1024 *
}

route "default" {
  upstream = ("ws://127.0.0.1:3000"
}
