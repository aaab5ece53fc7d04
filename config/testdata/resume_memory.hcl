# A route's buffer larger than what all sessions may hold together.
listener {
  address = "127.0.0.1:8080"
}

limits {
  resume_memory = "1MiB"
}

route "chat" {
  upstream = "ws://127.0.0.1:3000"
  resume {
    buffer = "2MiB"
  }
}
