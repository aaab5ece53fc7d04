# The smallest useful configuration: every other setting takes its default.
listener {
  address = "127.0.0.1:8080"
}
route "default" {
  upstream = "ws://127.0.0.1:3000"
}
