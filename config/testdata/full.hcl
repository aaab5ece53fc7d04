# Every listener, admin, engine and routing setting, none left to its
# default. Liveness settings are in heartbeat.hcl.
listener {
  address          = "127.0.0.1:8080"
  max_header_bytes = 32768
}

listener {
  address          = "[::1]:8443"
  max_header_bytes = "64KiB"
}

admin {
  address = "127.0.0.1:9090"
}

engine {
  loops    = 4
  io_uring = false
}

route "chat" {
  host              = "Chat.Example.com"
  path_prefix       = "/ws"
  upstream          = "ws://10.0.0.5:3000/socket"
  max_frame_size    = "1MiB"
  handshake_timeout = "3s"
  close_timeout     = "1500ms"
}

route "tenants" {
  host           = "*.example.com"
  upstream       = "backend.internal:4000"
  max_frame_size = 65536
}

route "fallback" {
  upstream       = "ws://legacy.internal"
  max_frame_size = "2 MB"
}
