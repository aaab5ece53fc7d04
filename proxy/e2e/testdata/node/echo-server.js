'use strict';

// echo-server.js: a WebSocket echo server built on Node's ws package, used
// as an upstream by wsalive's end-to-end tests (proxy/e2e/node_test.go).
//
//   node echo-server.js <port> [subprotocol,...]
//
// It listens on 127.0.0.1:<port> (0 picks a free port) and prints
// "LISTENING <port>" once ready. It refuses upgrades without an X-Test
// header (400), and answers with X-Test-Echo carrying that header's value.
// It picks the first subprotocol of its own list (argv[3]) that the client
// offered. Every message is echoed with its type, except the text message
// "close <code> <reason>", which makes it close with that code and reason.
// Events are printed one per line for the test to check:
//
//   CONNECTED x-test=<value> protocol=<chosen>
//   CLOSED <code> <reason>

const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
const preferred = (process.argv[3] || '').split(',').filter(Boolean);

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 64 << 20,
  perMessageDeflate: false,
  verifyClient: (info, cb) => {
    if (info.req.headers['x-test'] === undefined) {
      cb(false, 400, 'missing X-Test header');
      return;
    }
    cb(true);
  },
  handleProtocols: (offered) => {
    for (const p of preferred) {
      if (offered.has(p)) return p;
    }
    return false;
  },
});

wss.on('headers', (headers, req) => {
  headers.push('X-Test-Echo: ' + req.headers['x-test']);
});

wss.on('listening', () => {
  console.log('LISTENING ' + wss.address().port);
});

wss.on('error', (err) => {
  console.error('server error: ' + err.message);
  process.exit(1);
});

wss.on('connection', (ws, req) => {
  console.log('CONNECTED x-test=' + req.headers['x-test'] + ' protocol=' + (ws.protocol || ''));
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
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
