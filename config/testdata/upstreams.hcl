# Each upstream form wsalive refuses, with the reason.
listener {
  address = ":8080"
}

route "https" {
  upstream = "https://chat.example.com/socket"
}

route "http" {
  path_prefix = "/http"
  upstream    = "http://127.0.0.1:3000"
}

route "query" {
  path_prefix = "/query"
  upstream    = "ws://127.0.0.1:3000/socket?token=abc"
}

route "credentials" {
  path_prefix = "/credentials"
  upstream    = "ws://user:secret@127.0.0.1:3000"
}

route "bare" {
  path_prefix = "/bare"
  upstream    = "localhost"
}

route "missing" {
  path_prefix = "/missing"
}
