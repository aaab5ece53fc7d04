'use strict';

// client.js: a WebSocket client built on Node's ws package, used by
// wsalive's end-to-end tests (proxy/e2e/node_test.go) to talk through
// wsalive to an echo upstream, with permessage-deflate offered.
//
//   node client.js <ws-url>
//
// It sends a fixed sequence of messages (small, empty, compressible,
// incompressible; text and binary), checks each echo byte for byte, then
// closes with 4001 "node-bye". It prints one line per event:
//
//   EXTENSIONS <Sec-WebSocket-Extensions of the 101>
//   ECHO <index> <bytes>
//   CLOSED <code> <reason>
//
// and exits 0 when everything matched, 1 otherwise (reason on stderr).

const crypto = require('crypto');
const WebSocket = require('ws');

const url = process.argv[2];
if (!url) {
  console.error('usage: node client.js <ws-url>');
  process.exit(2);
}

function fail(msg) {
  console.error('FAIL ' + msg);
  process.exit(1);
}

// Give up well before the Go test's own bound.
setTimeout(() => fail('timed out'), 20000).unref();

const messages = [
  { binary: false, data: Buffer.from('hello from node') },
  { binary: true, data: crypto.randomBytes(1000) },
  { binary: false, data: Buffer.alloc(0) },
  { binary: true, data: Buffer.alloc(0) },
  // 1 MiB of a repeated sentence compresses to a few KiB.
  { binary: false, data: Buffer.from('wsalive keeps legacy websockets alive. '.repeat(26887)).subarray(0, 1 << 20) },
  // Random bytes do not compress.
  { binary: true, data: crypto.randomBytes(256 << 10) },
  { binary: false, data: Buffer.from('bye') },
];

const ws = new WebSocket(url, {
  perMessageDeflate: true,
  headers: { 'X-Test': 'node-client' },
  maxPayload: 64 << 20,
});

ws.on('upgrade', (res) => {
  const ext = res.headers['sec-websocket-extensions'] || '';
  console.log('EXTENSIONS ' + ext);
  if (!ext.startsWith('permessage-deflate')) {
    fail('permessage-deflate not negotiated: ' + JSON.stringify(ext));
  }
});

let next = 0;
function sendNext() {
  if (next === messages.length) {
    ws.close(4001, 'node-bye');
    return;
  }
  const m = messages[next];
  ws.send(m.data, { binary: m.binary, compress: true });
}

ws.on('open', sendNext);

ws.on('message', (data, isBinary) => {
  const m = messages[next];
  if (m === undefined) {
    fail('unexpected message after the last echo');
  }
  if (isBinary !== m.binary) {
    fail('echo ' + next + ': binary=' + isBinary + ', want ' + m.binary);
  }
  if (!Buffer.from(data).equals(m.data)) {
    fail('echo ' + next + ': ' + data.length + ' bytes differ from the ' + m.data.length + ' sent');
  }
  console.log('ECHO ' + next + ' ' + m.data.length);
  next++;
  sendNext();
});

ws.on('close', (code, reason) => {
  console.log('CLOSED ' + code + ' ' + reason.toString());
  if (next !== messages.length) {
    fail('closed after ' + next + ' of ' + messages.length + ' echoes');
  }
  process.exit(0);
});

ws.on('error', (err) => fail('error: ' + err.message));
