# Settings that are fine alone but clash with an earlier block.
listener {
  address = "127.0.0.1:8080"
}

listener {
  address = "127.0.0.1:8080"
}

admin {
  address = "127.0.0.1:8080"
}

admin {
  address = "127.0.0.1:9090"
}

route "api" {
  host        = "example.com"
  path_prefix = "/ws"
  upstream    = "ws://127.0.0.1:3000"
}

route "api" {
  host        = "EXAMPLE.com"
  path_prefix = "/ws"
  upstream    = "ws://127.0.0.1:3001"
}
