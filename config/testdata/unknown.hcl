# Misspelled names are reported with a suggestion, and the rest of the file
# is still checked.
listener {
  adress = "127.0.0.1:8080"
}

routes "default" {
  upstream = "ws://127.0.0.1:3000"
}

route "default" {
  upstream     = "ws://127.0.0.1:3000"
  close_timout = "5s"
}

timeout = "10s"
