# One bad value per setting: every one must be reported, in file order.
listener {
  address          = "127.0.0.1"
  max_header_bytes = 10
}

admin {
  address = "localhost:http"
}

engine {
  loops    = 2000
  io_uring = "yes"
}

route "default" {
  host              = "example.com:443"
  path_prefix       = "ws"
  upstream          = "ftp://127.0.0.1:3000"
  max_frame_size    = "16XB"
  handshake_timeout = 10
  close_timeout     = "5x"
}
