'use strict';

// socketio-server.js: a stock Socket.IO 4 server, used as an upstream by
// wsalive's end-to-end tests (proxy/e2e/socketio_test.go).
//
//   node socketio-server.js
//
// It listens on 127.0.0.1 on a free port and prints "LISTENING <port>".
// Every "echo" event is acknowledged with its argument. For every
// connection it prints the transport the client connected with and the
// one it upgraded to, and the X-Forwarded-For it saw:
//
//   CONNECTED <transport> xff=<X-Forwarded-For>
//   UPGRADED <transport>

const http = require('http');
const { Server } = require('socket.io');

const httpServer = http.createServer();
const io = new Server(httpServer, {
  // Short cycles, so that a test sees polling requests held and answered.
  pingInterval: 2000,
  pingTimeout: 5000,
});

// Engine.IO's connection comes first, on the transport the client opened
// with; the Socket.IO connection may come after a quick upgrade.
io.engine.on('connection', (conn) => {
  console.log('CONNECTED ' + conn.transport.name + ' xff=' + (conn.request.headers['x-forwarded-for'] || ''));
  conn.once('upgrade', (transport) => console.log('UPGRADED ' + transport.name));
});

io.on('connection', (socket) => {
  socket.on('echo', (arg, ack) => ack(arg));
});

httpServer.listen(0, '127.0.0.1', () => {
  console.log('LISTENING ' + httpServer.address().port);
});
