# Every way a drain block, the log level or pprof can be wrong.
log_level = "loud"

listener {
  address = "127.0.0.1:8080"
}

admin {
  address = "127.0.0.1:9090"
  pprof   = "yes"
}

drain {
  delay      = "-1s"
  window     = "2h"
  close_code = 1006
}

drain {
  close_code = 999
}

route "default" {
  upstream = "ws://127.0.0.1:3000"
}
