// resume-client.mjs: wsalive's client helper (examples/client/
// wsalive-client.js) over Node's ws package, for the resume end-to-end
// tests (proxy/e2e/resume_linux_test.go).
//
//   node resume-client.mjs <ws-or-wss-url> [ca-file]
//
// It opts in to a session and sends "u1", "u2", ... every 10 ms while it
// checks that the upstream's messages are "d1", "d2", ... each once and in
// order. It prints "RECEIVED 50" after 50 of them. SIGUSR2 resets its TCP
// connection (the test has blackholed it and switched the route): the
// helper resumes. One second after the resume it stops, sends "END <n>",
// and on the upstream's "END <m>" prints
//
//   CLIENT received=<k> sent=<n> ok=<true|false> <why>
//
// and closes with 1000. Other events, one per line: OPEN, CUT,
// RECONNECTING <code>, RESUMED resent=<r>, STATELOST <code> <reason>.
// It exits 0 once closed, 1 on a problem (reason on stderr).

import fs from 'node:fs';
import { WebSocket } from 'ws';
import { WsaliveClient } from '../../../../examples/client/wsalive-client.js';

const url = process.argv[2];
const caFile = process.argv[3];
const ca = caFile ? fs.readFileSync(caFile) : undefined;

// The helper constructs its sockets as a browser would: new WebSocket(url,
// protocols). A subclass adds the test's CA for wss://.
class TestWebSocket extends WebSocket {
  constructor(u, protocols) {
    super(u, protocols, { ca, perMessageDeflate: true });
  }
}

const c = new WsaliveClient(url, { WebSocket: TestWebSocket, resume: true, backoff: { base: 200, cap: 1000, maxAttempts: 20 } });
let sent = 0;
let received = 0;
let problem = '';
let ticking = null;
let ended = false;

c.on('open', (e) => {
  console.log(`OPEN resumable=${e.resumable}`);
  if (!e.resumable) problem ||= 'the session is not resumable';
  if (ticking === null) {
    ticking = setInterval(() => {
      sent++;
      c.send(`u${sent}`);
    }, 10);
  }
});
c.on('message', (e) => {
  const text = String(e.data);
  if (text.startsWith('END ')) {
    const last = Number(text.slice(4));
    if (last !== received) problem ||= `upstream says its last is d${last}, got ${received}`;
    console.log(`CLIENT received=${received} sent=${sent} ok=${!problem} ${problem}`);
    ended = true;
    c.close(1000, 'done');
    return;
  }
  if (text !== `d${received + 1}`) {
    problem ||= `after d${received} got ${JSON.stringify(text)}`;
    return;
  }
  received++;
  if (received === 50) console.log('RECEIVED 50');
});
c.on('reconnecting', (e) => console.log(`RECONNECTING ${e.code}`));
c.on('resumed', (e) => {
  console.log(`RESUMED resent=${e.resent}`);
  setTimeout(() => {
    clearInterval(ticking);
    c.send(`END ${sent}`);
  }, 1000);
});
c.on('statelost', (e) => {
  console.log(`STATELOST ${e.code} ${e.reason}`);
  problem ||= `state lost: ${e.code} ${e.reason}`;
});
c.on('close', (e) => {
  if (!ended) problem ||= `gave up: ${e.code} ${e.reason}`;
  if (problem) {
    console.error(problem);
    process.exit(1);
  }
  process.exit(0);
});

// The network switch: the old connection's packets are dropped, so the
// reset reaches nobody; what matters is that the helper sees its socket
// die (1006) and resumes over the new path.
process.on('SIGUSR2', () => {
  console.log('CUT');
  const sock = c.ws?._socket;
  try {
    sock?.resetAndDestroy();
  } catch {
    sock?.destroy(); // a TLS socket cannot be reset from Node: closed instead
  }
});
