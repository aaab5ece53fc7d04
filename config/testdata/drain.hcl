# The process-wide settings: drain, log level, and pprof on the admin
# endpoint.
log_level = "debug"

listener {
  address = "127.0.0.1:8080"
}

admin {
  address = "127.0.0.1:9090"
  pprof   = true
}

drain {
  delay      = "10s"
  window     = "2m"
  close_code = 4000
}

route "default" {
  upstream = "ws://127.0.0.1:3000"
}
