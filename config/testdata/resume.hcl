# Resumable sessions: a route with every resume setting, one with the
# defaults, one without resume; limits.resume_memory process-wide.
listener {
  address = "127.0.0.1:8080"
}

limits {
  resume_memory = "16MiB"
}

route "chat" {
  path_prefix = "/chat"
  upstream    = "ws://127.0.0.1:3000"
  resume {
    window = "45s"
    buffer = "512KiB"
  }
}

route "feed" {
  path_prefix = "/feed"
  upstream    = "ws://127.0.0.1:3001"
  resume {}
}

route "plain" {
  upstream = "ws://127.0.0.1:3002"
}
