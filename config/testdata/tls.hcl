# TLS on both sides: a listener with SNI certificates, min_version and
# client certificates, and wss:// upstreams with and without upstream_tls.
listener {
  address = "0.0.0.0:8443"
  tls {
    cert_file = "/etc/wsalive/tls/server.crt"
    key_file  = "/etc/wsalive/tls/server.key"
  }
}

listener {
  address = "0.0.0.0:9443"
  tls {
    min_version    = "1.3"
    client_ca_file = "/etc/wsalive/tls/clients-ca.crt"
    certificate {
      cert_file = "chat.crt"
      key_file  = "chat.key"
    }
    certificate {
      cert_file = "api.crt"
      key_file  = "api.key"
    }
  }
}

listener {
  address = "127.0.0.1:8080"
}

route "default" {
  upstream = "wss://backend.internal:9443/socket"
  upstream_tls {
    ca_file     = "/etc/wsalive/tls/ca.crt"
    server_name = "backend.internal"
  }
}

route "defaults" {
  path_prefix = "/defaults"
  upstream    = "wss://Backend.Example.com"
}

route "ip" {
  path_prefix = "/ip"
  upstream    = "wss://[::1]:9443"
  upstream_tls {
    server_name = "backend.internal"
    cert_file   = "/etc/wsalive/tls/client.crt"
    key_file    = "/etc/wsalive/tls/client.key"
  }
}

route "test" {
  path_prefix = "/test"
  upstream    = "wss://10.0.0.7:9443"
  upstream_tls {
    insecure_skip_verify = true
  }
}

route "plain" {
  path_prefix = "/plain"
  upstream    = "ws://127.0.0.1:3000"
}
