# Proxy configuration template for `wsload -mode blackhole-upstream`: wsload
# fills in {{listen}} and {{upstream}}. The upstream side is pinged after 5 s
# of silence and declared dead 3 s after an unanswered ping (max_missed 1),
# so the detection bound is 5 + 3 x 1 = 8 s plus the proxy's timer tick.
# The other side keeps wsalive's defaults.
listener {
  address = "{{listen}}"
}

route "blackhole" {
  upstream = "{{upstream}}"

  heartbeat "upstream" {
    interval   = "5s"
    timeout    = "3s"
    max_missed = 1
  }
}
