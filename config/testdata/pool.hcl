# Upstream pools: a list, server blocks beside it, and the pool settings.
listener {
  address = ":8080"
}

# The list form alone, with the issue's example settings.
route "chat" {
  path_prefix = "/chat"
  upstream    = ["ws://10.0.1.10:3000", "ws://10.0.1.11:3000", "ws://10.0.1.12:3000"]
  balance     = "hash"
  hash_key    = "client_ip"
}

# Route-wide health settings, a primary and a backup with their own.
route "api" {
  path_prefix  = "/api"
  upstream     = ["ws://api-1.internal:4000/socket", "ws://api-2.internal:4000/socket"]
  balance      = "least_pairs"
  max_fails    = 3
  fail_timeout = "30s"
  dns_ttl      = "5s"

  server "ws://api-3.internal:4000/socket" {
    weight    = 3
    max_fails = 0
  }
  server "ws://api-standby.internal:4000/socket" {
    backup       = true
    fail_timeout = "1m"
  }
}

# Server blocks alone; a header key is stored in canonical form.
route "rooms" {
  path_prefix = "/rooms"
  balance     = "hash"
  hash_key    = "header:x-room-id"

  server "ws://10.0.2.1:3000" {}
  server "ws://10.0.2.2:3000" {}
}

route "sticky" {
  path_prefix = "/sticky"
  upstream    = ["127.0.0.1:3001", "127.0.0.1:3002"]
  balance     = "hash"
  hash_key    = "cookie:sid"
  dns_ttl     = "0s"
}
