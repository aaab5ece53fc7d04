'use strict';

// resume-upstream.js: an upstream that knows nothing of wsalive's
// sessions, for the resume end-to-end tests (proxy/e2e/resume_linux_test.go).
//
//   node resume-upstream.js <port>
//
// It listens on 127.0.0.1:<port> (0 picks a free port), prints
// "LISTENING <port>", and counts its connections. On each it sends
// "d1", "d2", ... every 10 ms and checks that the client's messages are
// "u1", "u2", ... each once and in order. The client's "END <n>" (n its
// last number) stops the ticks; the upstream answers "END <m>" (m its last
// number) and prints
//
//   UPSTREAM connections=<c> received=<k> sent=<m> ok=<true|false> <why>
//
// Other events, one per line: CONNECTED <c>, CLOSED <code>.

const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
let connections = 0;

wss.on('listening', () => console.log(`LISTENING ${wss.address().port}`));
wss.on('connection', (ws) => {
  connections++;
  console.log(`CONNECTED ${connections}`);
  let sent = 0;
  let received = 0;
  let problem = '';
  const tick = setInterval(() => {
    sent++;
    ws.send(`d${sent}`);
  }, 10);
  ws.on('message', (data, isBinary) => {
    const text = data.toString();
    if (text.startsWith('END ')) {
      clearInterval(tick);
      const last = Number(text.slice(4));
      if (last !== received && !problem) problem = `client says its last is u${last}, got ${received}`;
      ws.send(`END ${sent}`);
      console.log(`UPSTREAM connections=${connections} received=${received} sent=${sent} ok=${!problem} ${problem}`);
      return;
    }
    if (isBinary || text !== `u${received + 1}`) {
      if (!problem) problem = `after u${received} got ${JSON.stringify(text)}`;
      return;
    }
    received++;
  });
  ws.on('close', (code) => {
    clearInterval(tick);
    console.log(`CLOSED ${code}`);
  });
});
