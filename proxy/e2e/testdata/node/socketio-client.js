'use strict';

// socketio-client.js: a stock Socket.IO 4 client, used by wsalive's
// end-to-end tests (proxy/e2e/socketio_test.go) to talk through wsalive.
//
//   node socketio-client.js <url> <default|websocket>
//
// "default" uses the client's default transports: HTTP long-polling first,
// then the upgrade to WebSocket. "websocket" uses transports:
// ['websocket'] only. It sends echo events with acknowledgements, some
// before and some after the upgrade, and prints:
//
//   CONNECTED <transport>         (the one the engine opened with)
//   UPGRADED <transport>          (default mode only)
//   ECHO <n>
//   DONE <transport>
//
// and exits 0, or prints the reason on stderr and exits 1.

const { io } = require('socket.io-client');

const [url, mode] = process.argv.slice(2);
if (!url || !['default', 'websocket'].includes(mode)) {
  console.error('usage: node socketio-client.js <url> <default|websocket>');
  process.exit(2);
}

function fail(msg) {
  console.error('FAIL ' + msg);
  process.exit(1);
}

// Give up well before the Go test's own bound.
setTimeout(() => fail('timed out'), 20000).unref();

const opts = { reconnection: false, timeout: 5000 };
if (mode === 'websocket') {
  opts.transports = ['websocket'];
}
const socket = io(url, opts);

let sent = 0;
function echo(n) {
  const payload = { n, text: 'message ' + n, blob: Buffer.alloc(n * 100, n) };
  return socket.timeout(5000).emitWithAck('echo', payload).then((back) => {
    if (back.n !== n || back.text !== payload.text || !Buffer.from(back.blob).equals(payload.blob)) {
      fail('echo ' + n + ' came back different');
    }
    console.log('ECHO ' + n);
  });
}

socket.on('connect_error', (err) => fail('connect_error: ' + err.message + ' ' + (err.description || '')));
socket.on('disconnect', (reason) => {
  if (reason !== 'io client disconnect') fail('disconnected: ' + reason);
});

// The transport the engine opened with: by the time the socket's own
// "connect" arrives, a quick upgrade may already be done.
socket.io.on('open', () => console.log('CONNECTED ' + socket.io.engine.transport.name));

socket.on('connect', async () => {
  const engine = socket.io.engine;
  try {
    // Before any upgrade: over polling in default mode.
    for (let i = 0; i < 3; i++) await echo(sent++);
    if (mode === 'default') {
      if (engine.transport.name !== 'websocket') {
        await new Promise((resolve) => engine.once('upgrade', resolve));
      }
      console.log('UPGRADED ' + engine.transport.name);
    }
    for (let i = 0; i < 3; i++) await echo(sent++);
    console.log('DONE ' + engine.transport.name);
    socket.disconnect();
    process.exit(0);
  } catch (err) {
    fail(String(err));
  }
});
