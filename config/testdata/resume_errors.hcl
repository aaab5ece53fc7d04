listener {
  address = "127.0.0.1:8080"
}

limits {
  resume_memory = "100B"
}

route "a" {
  path_prefix = "/a"
  upstream    = "ws://127.0.0.1:3000"
  resume {
    window = "0s"
    buffer = "512B"
    replay = true
  }
  resume {
    window = "10s"
  }
}

route "b" {
  path_prefix = "/b"
  upstream    = "ws://127.0.0.1:3001"
  resume {
    window = "2h"
    buffer = "1GiB"
  }
}

route "c" {
  path_prefix = "/c"
  upstream    = "ws://127.0.0.1:3002"
  resume {
    window = 30
    buffer = "1.5MiB"
  }
}
