'use strict';

// wss-server.js: a wss:// echo server built on Node's https and ws
// packages, used as a TLS upstream by wsalive's end-to-end tests
// (proxy/e2e/tls_test.go).
//
//   node wss-server.js <port> <cert.pem> <key.pem> [client-ca.pem|-] [subprotocol,...]
//
// It listens on 127.0.0.1:<port> (0 picks a free port) with the given
// certificate and prints "LISTENING <port>" once ready. With a client CA
// (not "-") it requires client certificates signed by it. It offers
// permessage-deflate and picks the first subprotocol of its own list that
// the client offered. Every message is echoed with its type, except the
// text message "close <code> <reason>", which makes it close with that
// code and reason. Events are printed one per line:
//
//   CONNECTED protocol=<chosen> extensions=<Sec-WebSocket-Extensions> client=<client certificate CN or ->
//   CLOSED <code> <reason>

const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');

const [port, certFile, keyFile, caFile, protocols] = process.argv.slice(2);
if (!certFile || !keyFile) {
  console.error('usage: node wss-server.js <port> <cert.pem> <key.pem> [client-ca.pem|-] [subprotocol,...]');
  process.exit(2);
}
const preferred = (protocols || '').split(',').filter(Boolean);

const options = { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) };
if (caFile && caFile !== '-') {
  options.ca = fs.readFileSync(caFile);
  options.requestCert = true;
  options.rejectUnauthorized = true;
}
const server = https.createServer(options);

const wss = new WebSocketServer({
  server,
  maxPayload: 64 << 20,
  perMessageDeflate: true,
  handleProtocols: (offered) => {
    for (const p of preferred) {
      if (offered.has(p)) return p;
    }
    return false;
  },
});

server.on('tlsClientError', (err) => {
  console.log('TLSERROR ' + err.message);
});

server.listen(Number(port || 0), '127.0.0.1', () => {
  console.log('LISTENING ' + server.address().port);
});

server.on('error', (err) => {
  console.error('server error: ' + err.message);
  process.exit(1);
});

wss.on('connection', (ws, req) => {
  const peer = req.socket.getPeerCertificate();
  const client = peer && peer.subject ? peer.subject.CN : '-';
  console.log('CONNECTED protocol=' + (ws.protocol || '') +
    ' extensions=' + (ws.extensions || '') + ' client=' + client);
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length < 256) {
      const m = /^close (\d+) (.*)$/.exec(data.toString());
      if (m) {
        ws.close(Number(m[1]), m[2]);
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => {
    console.log('CLOSED ' + code + ' ' + reason.toString());
  });
  ws.on('error', (err) => {
    console.log('ERROR ' + err.message);
  });
});

// The test kills the process when it is done; SIGTERM from elsewhere ends
// it cleanly too.
process.on('SIGTERM', () => process.exit(0));
