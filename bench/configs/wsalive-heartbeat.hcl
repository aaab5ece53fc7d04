# wsalive for the idle-pairs scenario (RSS per pair, heartbeat CPU): one
# event loop (and GOMAXPROCS=1 from the environment), and a heartbeat
# every 5 s toward both sides: with 9,000 idle pairs that is 3,600 pings
# a second, each answered by a pong that wsalive absorbs.
# Started as: GOMAXPROCS=1 wsalive run -config FILE -log-level warn
listener {
  address = "{{listen}}"
}

admin {
  address = "{{admin}}"
}

engine {
  loops = 1
}

route "bench" {
  upstream = "{{upstream}}"

  heartbeat "client" {
    interval   = "5s"
    timeout    = "3s"
    max_missed = 1
  }

  heartbeat "upstream" {
    interval   = "5s"
    timeout    = "3s"
    max_missed = 1
  }
}
