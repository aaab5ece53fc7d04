# Every upstream pool mistake, each pointed at where it was written.
listener {
  address = ":8080"
}

route "list" {
  path_prefix = "/list"
  upstream    = ["ws://10.0.1.10:3000", "http://10.0.1.11:3000", 42]
}

route "empty" {
  path_prefix = "/empty"
  upstream    = []
}

route "paths" {
  path_prefix = "/paths"
  upstream    = ["ws://10.0.1.10:3000/a", "ws://10.0.1.11:3000/b"]
}

route "twice" {
  path_prefix = "/twice"
  upstream    = ["ws://10.0.1.10:3000"]

  server "10.0.1.10:3000" {
    max_fails = 2
  }
}

route "backups" {
  path_prefix = "/backups"

  server "ws://10.0.1.10:3000" {
    backup = true
  }
}

route "balance" {
  path_prefix = "/balance"
  upstream    = ["ws://10.0.1.10:3000"]
  balance     = "round-robin"
}

route "key" {
  path_prefix = "/key"
  upstream    = ["ws://10.0.1.10:3000"]
  balance     = "hash"
  hash_key    = "header:"
}

route "unused_key" {
  path_prefix = "/unused_key"
  upstream    = ["ws://10.0.1.10:3000"]
  hash_key    = "cookie:sid"
}

route "settings" {
  path_prefix  = "/settings"
  upstream     = "ws://10.0.1.10:3000"
  max_fails    = -1
  fail_timeout = "0s"
  dns_ttl      = "2h"

  server "ws://10.0.1.11:3000" {
    backup   = "yes"
    weight   = 0
    priority = 2
  }
}

route "type" {
  path_prefix = "/type"
  upstream    = { a = "ws://10.0.1.10:3000" }
}
