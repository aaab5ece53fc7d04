# Every TLS mistake wsalive reports, each at the value at fault.
listener {
  address = ":8443"
  tls {
  }
}

listener {
  address = ":8444"
  tls {
    cert_file   = "server.crt"
    min_version = "1.1"
  }
  tls {
    cert_file = "again.crt"
  }
}

listener {
  address = ":8445"
  tls {
    cert_file      = "a.crt"
    key_file       = "a.key"
    min_version    = 1.2
    client_ca_file = ""
    certificate {
      cert_file = "a.crt"
      key_file  = "a2.key"
    }
    certificate {
      key_file = "b.key"
    }
    certficate {
    }
  }
}

route "plain" {
  upstream = "ws://127.0.0.1:3000"
  upstream_tls {
    ca_file = "ca.crt"
  }
}

route "bad" {
  path_prefix = "/bad"
  upstream    = "wss://backend:9443"
  upstream_tls {
    ca_file              = "ca.crt"
    server_name          = "backend:9443"
    cert_file            = "client.crt"
    insecure_skip_verify = true
  }
  upstream_tls {
  }
}

route "wildcard" {
  path_prefix = "/wildcard"
  upstream    = "wss://backend:9443"
  upstream_tls {
    server_name          = "*.example.com"
    insecure_skip_verify = "yes"
  }
}
