# Replacing an nginx WebSocket location:
#
#   location /socket/ {
#     proxy_pass http://127.0.0.1:3000/;
#     proxy_http_version 1.1;
#     proxy_set_header Upgrade $http_upgrade;
#     proxy_set_header Connection "upgrade";
#     proxy_read_timeout 3600s;
#   }
#
# The same routing in wsalive: the upstream path "/" replaces the matched
# prefix, as proxy_pass with a URI does (/socket/room1 -> /room1). Headers
# are forwarded and X-Forwarded-For/-Proto/-Host added without being told.
# Where nginx's long proxy_read_timeout only hid dead connections for an
# hour, heartbeats find them within interval + timeout x max_missed.
listener {
  address = "0.0.0.0:8080"
}

route "socket" {
  path_prefix = "/socket/"
  upstream    = "ws://127.0.0.1:3000/"
}

# Another host on the same listener.
route "admin-ws" {
  host        = "admin.example.com"
  upstream    = "ws://127.0.0.1:4000"
  idle_timeout = "10m"
}
