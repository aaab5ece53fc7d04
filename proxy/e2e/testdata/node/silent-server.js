'use strict';

// silent-server.js: a WebSocket server built on Node's ws package that
// never sends anything of its own, used as an upstream by wsalive's
// liveness tests (proxy/e2e/liveness_test.go). It relies on ws's stock
// ping handling, which answers every ping with a pong.
//
//   node silent-server.js
//
// It listens on a free port of 127.0.0.1 and prints one line per event:
//
//   LISTENING <port>
//   CONNECTED
//   PING <payload bytes>
//   CLOSED <code> <reason> pongs=<pongs it received>

const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });

wss.on('listening', () => console.log('LISTENING ' + wss.address().port));

wss.on('error', (err) => {
  console.error('server error: ' + err.message);
  process.exit(1);
});

wss.on('connection', (ws) => {
  console.log('CONNECTED');
  let pongs = 0;
  ws.on('ping', (data) => console.log('PING ' + data.length));
  // Nobody here ever pings, so a pong is one wsalive should have absorbed.
  ws.on('pong', () => pongs++);
  ws.on('message', () => console.log('MESSAGE'));
  ws.on('close', (code, reason) => {
    console.log('CLOSED ' + code + ' ' + reason.toString() + ' pongs=' + pongs);
  });
  ws.on('error', (err) => console.log('ERROR ' + err.message));
});

// The test kills the process when it is done.
process.on('SIGTERM', () => process.exit(0));
