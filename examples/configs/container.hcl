# The configuration baked into the container image: listen on every
# interface of the container, relay to a legacy service in the same pod or
# compose project. Mount your own file over /etc/wsalive/wsalive.hcl.
listener {
  address = "0.0.0.0:8080"
}

admin {
  address = "0.0.0.0:9090"
}

route "default" {
  upstream = "ws://127.0.0.1:3000"
}
