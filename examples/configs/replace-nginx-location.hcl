# Replacing an nginx location that serves a Socket.IO (or any WebSocket)
# application, plain HTTP and upgrades alike:
#
#   location /socket.io/ {
#     proxy_pass http://127.0.0.1:3000;
#     proxy_http_version 1.1;
#     proxy_set_header Upgrade $http_upgrade;
#     proxy_set_header Connection "upgrade";
#     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
#     proxy_set_header X-Forwarded-Proto $scheme;
#     proxy_read_timeout 3600s;
#   }
#   location /socket/ {
#     proxy_pass http://127.0.0.1:3000/;
#     proxy_http_version 1.1;
#     proxy_set_header Upgrade $http_upgrade;
#     proxy_set_header Connection "upgrade";
#   }
#
# The same in wsalive. Socket.IO's long-polling requests are plain HTTP,
# passed to the upstream with keep-alive and flushed as they come; its
# upgrade is a WebSocket pair with heartbeats. The upstream path "/"
# replaces the matched prefix, as proxy_pass with a URI does
# (/socket/room1 -> /room1). X-Forwarded-For/-Proto/-Host are set without
# being told. Where nginx's long proxy_read_timeout only hid dead
# connections for an hour, heartbeats find them within
# interval + timeout x max_missed.
listener {
  address = "0.0.0.0:8080"
}

route "socketio" {
  path_prefix     = "/socket.io/"
  upstream        = "ws://127.0.0.1:3000"
  allowed_origins = ["https://app.example.com"]
}

route "socket" {
  path_prefix = "/socket/"
  upstream    = "ws://127.0.0.1:3000/"
  http        = "reject" # WebSocket only: plain requests get 426
}

# Another host on the same listener.
route "admin-ws" {
  host         = "admin.example.com"
  upstream     = "ws://127.0.0.1:4000"
  idle_timeout = "10m"
}
