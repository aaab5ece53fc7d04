# TLS on both sides: wsalive terminates TLS for its clients (wss://) and
# speaks TLS to a backend that is only reachable as wss://.
#
# Certificates are read at start and again whenever their files change on
# disk (certbot renewals, cert-manager, a Kubernetes Secret update): new
# handshakes get the new certificate, open pairs are not touched.
listener {
  address = "0.0.0.0:8443"
  tls {
    cert_file = "/etc/wsalive/tls/server.crt"
    key_file  = "/etc/wsalive/tls/server.key"
  }
}

route "default" {
  upstream = "wss://backend.internal:9443/socket"
  upstream_tls {
    ca_file     = "/etc/wsalive/tls/ca.crt" # default: the system's roots
    server_name = "backend.internal"        # default: the URL's host
  }
}
