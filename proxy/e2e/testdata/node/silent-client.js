'use strict';

// silent-client.js: a WebSocket client built on Node's ws package that
// never sends anything of its own, used by wsalive's liveness tests
// (proxy/e2e/liveness_test.go). It relies on ws's stock ping handling,
// which answers every ping with a pong, to stay alive through wsalive's
// heartbeat.
//
//   node silent-client.js <ws-url> <pings>
//
// After <pings> pings it closes with 1000 "node-done". It prints one line
// per event:
//
//   OPEN
//   PING <payload bytes>
//   CLOSED <code> <reason> pongs=<pongs it received>
//
// and exits 0 once closed, 1 on an error (reason on stderr).

const WebSocket = require('ws');

const url = process.argv[2];
const want = Number(process.argv[3] || 3);
if (!url) {
  console.error('usage: node silent-client.js <ws-url> <pings>');
  process.exit(2);
}

// Give up well before the Go test's own bound.
setTimeout(() => {
  console.error('FAIL timed out');
  process.exit(1);
}, 20000).unref();

const ws = new WebSocket(url);
let pings = 0;
let pongs = 0;

ws.on('open', () => console.log('OPEN'));

ws.on('ping', (data) => {
  // ws has already queued the pong (autoPong).
  pings++;
  console.log('PING ' + data.length);
  if (pings === want) {
    ws.close(1000, 'node-done');
  }
});

// Nobody here ever pings, so a pong is one wsalive should have absorbed.
ws.on('pong', () => pongs++);

ws.on('message', () => {
  console.error('FAIL unexpected message');
  process.exit(1);
});

ws.on('close', (code, reason) => {
  console.log('CLOSED ' + code + ' ' + reason.toString() + ' pongs=' + pongs);
  process.exit(0);
});

ws.on('error', (err) => {
  console.error('FAIL error: ' + err.message);
  process.exit(1);
});
