// Unit tests of wsalive-client.js under a fake clock and a fake WebSocket:
// `node --test` in this directory (go test ./examples/client runs it too).
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsaliveClient, backoffDelay, defaultShouldReconnect, ACK_EVERY, ACK_DELAY } from "./wsalive-client.js";

// FakeClock runs timers when the test advances time; nothing sleeps.
class FakeClock {
  constructor() {
    this.t = 0;
    this.nextId = 1;
    this.timers = new Map(); // id -> {at, fn}
  }
  now() {
    return this.t;
  }
  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(id) {
    this.timers.delete(id);
  }
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, tm] of this.timers) if (tm.at <= end && (!next || tm.at < next[1].at)) next = [id, tm];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

// FakeWebSocket records what the helper does; the test plays the server.
function fakeWebSocketClass() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(data) {
      if (this.closedWith) throw new Error("send on a closed socket");
      this.sent.push(data);
    }
    close(code, reason) {
      this.closedWith = { code, reason };
    }
    // Server side of the test:
    open() {
      this.onopen?.({});
    }
    receive(data) {
      this.onmessage?.({ data });
    }
    drop(code = 1006, reason = "") {
      this.onclose?.({ code, reason, wasClean: code !== 1006 });
    }
  }
  return { FakeWebSocket, sockets };
}

const CONTROL = "Qm9vc3Rlci1jb250cm9sLTEy";
const welcome = (over = {}) =>
  JSON.stringify({ wsalive: "welcome", v: 1, resume: true, resumed: false, token: "tok1", control: CONTROL, window_ms: 30000, recv: 0, ...over });

function setup(opts = {}) {
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const events = [];
  const c = new WsaliveClient("ws://h/chat?room=1", { WebSocket: FakeWebSocket, clock, random: () => 0.5, ...opts });
  for (const type of ["open", "resumed", "reconnecting", "message", "statelost", "close", "pong"]) {
    c.on(type, (e) => events.push({ type, ...e }));
  }
  const last = () => sockets[sockets.length - 1];
  const types = () => events.map((e) => e.type);
  return { c, clock, sockets, events, last, types };
}

test("backoff is full jitter below min(cap, base*2^attempt)", () => {
  const b = { base: 100, cap: 1000 };
  assert.equal(backoffDelay(0, b, () => 0.999), 99);
  assert.equal(backoffDelay(3, b, () => 0.5), 400);
  assert.equal(backoffDelay(10, b, () => 0.5), 500); // capped
  assert.equal(backoffDelay(5, b, () => 0), 0);
});

test("reconnect delays grow with full jitter and reset after an open", () => {
  const { clock, sockets, events, last } = setup({ backoff: { base: 100, cap: 1000 } });
  assert.equal(sockets.length, 1); // the first connect is immediate
  const delays = [];
  for (let i = 0; i < 6; i++) {
    last().drop(1006);
    const r = events.filter((e) => e.type === "reconnecting").at(-1);
    delays.push(r.delay);
    clock.advance(r.delay - 1);
    assert.equal(sockets.length, i + 1, "no reconnect before the delay");
    clock.advance(1);
    assert.equal(sockets.length, i + 2, "reconnect at the delay");
  }
  assert.deepEqual(delays, [50, 100, 200, 400, 500, 500]); // random() = 0.5
  last().open();
  last().drop(1001);
  assert.equal(events.at(-1).delay, 50, "attempts reset after an open");
});

test("max attempts: gives up with a reason", () => {
  const { clock, sockets, events, last } = setup({ backoff: { base: 10, cap: 10, maxAttempts: 2 } });
  last().drop(1006);
  clock.advance(10);
  last().drop(1006);
  clock.advance(10);
  last().drop(1006);
  assert.equal(sockets.length, 3);
  const close = events.at(-1);
  assert.equal(close.type, "close");
  assert.match(close.reason, /gave up after 2 attempts/);
});

test("close codes: which stop and which reconnect", () => {
  const cases = {
    1000: false, 1001: true, 1002: false, 1006: true, 1008: false, 1011: true,
    1012: true, 1013: true, 1014: true, 4000: false, 4321: false, 4899: false,
    4900: true, 4903: true, 4906: true, 4907: false,
  };
  for (const [code, again] of Object.entries(cases)) {
    assert.equal(defaultShouldReconnect(Number(code)), again, `code ${code}`);
    const { sockets, events, last } = setup();
    last().open();
    last().drop(Number(code), "r");
    assert.equal(events.at(-1).type, again ? "reconnecting" : "close", `code ${code}`);
    if (!again) assert.match(events.at(-1).reason, new RegExp(`closed with ${code} \\(r\\)`));
    assert.equal(sockets.length, 1);
  }
});

test("shouldReconnect overrides the policy", () => {
  const { events, last } = setup({ shouldReconnect: (code) => (code === 4001 ? true : code === 1012 ? false : undefined) });
  last().open();
  last().drop(4001);
  assert.equal(events.at(-1).type, "reconnecting");
});

test("send queues while disconnected, flushes in order on open, and is bounded", () => {
  const { c, clock, last } = setup({ queueLimit: 3 });
  assert.equal(c.send("a"), true);
  assert.equal(c.send("b"), true);
  assert.equal(c.send("c"), true);
  assert.equal(c.send("d"), false, "queue full");
  last().open();
  assert.deepEqual(last().sent, ["a", "b", "c"]);
  c.send("e");
  assert.deepEqual(last().sent, ["a", "b", "c", "e"]);
  last().drop(1006);
  c.send("f");
  clock.advance(1000);
  last().open();
  assert.deepEqual(last().sent, ["f"]);
});

test("close() stops everything and sends the app's close", () => {
  const { c, clock, sockets, events, last } = setup();
  last().open();
  const ws = last();
  c.close(1000, "bye");
  assert.deepEqual(ws.closedWith, { code: 1000, reason: "bye" });
  // The close event waits for the closing handshake: an app that exits on
  // it must not cut its own close frame short.
  assert.notEqual(events.at(-1)?.type, "close");
  assert.throws(() => c.send("x"));
  ws.drop(1000, "bye");
  assert.deepEqual(events.at(-1), { type: "close", code: 1000, reason: "bye" });
  clock.advance(60000);
  assert.equal(sockets.length, 1);
  assert.throws(() => c.send("x"));
});

test("close() gives up waiting for the closing handshake after CLOSE_WAIT", () => {
  const { c, clock, events, last } = setup();
  last().open();
  c.close(1000, "bye");
  clock.advance(4999);
  assert.notEqual(events.at(-1)?.type, "close");
  clock.advance(1);
  assert.equal(events.at(-1).type, "close");
  assert.equal(events.filter((e) => e.type === "close").length, 1);
});

test("resume: opt-in URL, welcome, messages and acks", () => {
  const { c, clock, last, events, types } = setup({ resume: true });
  assert.equal(last().url, "ws://h/chat?room=1&wsalive_resume=new");
  c.send("early");
  last().open();
  assert.deepEqual(last().sent, [], "nothing is sent before the welcome");
  last().receive(welcome());
  assert.deepEqual(types(), ["open"]);
  assert.equal(events[0].resumable, true);
  assert.deepEqual(last().sent, ["early"]);

  // Control messages are consumed, not delivered.
  last().receive(CONTROL + "a1");
  assert.equal(c.session.unacked, 0);
  assert.equal(types().includes("message"), false);

  // An ack after ACK_EVERY messages, at once.
  for (let i = 1; i <= ACK_EVERY; i++) last().receive(`m${i}`);
  assert.equal(last().sent.at(-1), `${CONTROL}a${ACK_EVERY}`);
  // And at least once a second while unacknowledged.
  last().receive("x");
  clock.advance(ACK_DELAY - 1);
  assert.equal(last().sent.at(-1), `${CONTROL}a${ACK_EVERY}`);
  clock.advance(1);
  assert.equal(last().sent.at(-1), `${CONTROL}a${ACK_EVERY + 1}`);
  const n = last().sent.length;
  clock.advance(10 * ACK_DELAY);
  assert.equal(last().sent.length, n, "no ack when nothing is new");
  assert.equal(events.filter((e) => e.type === "message").length, ACK_EVERY + 1);
});

test("resume: an ack beyond what was sent is a protocol error", () => {
  const { c, last, events } = setup({ resume: true });
  last().open();
  last().receive(welcome());
  c.send("one");
  last().receive(CONTROL + "a2");
  assert.equal(last().closedWith.code, 1000);
  last().drop(1000); // the server answers the close
  assert.equal(events.at(-1).type, "close");
  assert.match(events.at(-1).reason, /beyond/);
});

test("resume: a break without a close frame resumes and resends what was not handed on", () => {
  const { c, clock, last, events, types } = setup({ resume: true });
  last().open();
  last().receive(welcome());
  for (const m of ["u1", "u2", "u3", "u4"]) c.send(m);
  last().receive(CONTROL + "a1");
  for (const m of ["d1", "d2", "d3"]) last().receive(m);
  last().drop(1006);
  assert.equal(types().at(-1), "reconnecting");
  c.send("u5"); // while away: queued, sent after the resend
  clock.advance(events.at(-1).delay);
  assert.equal(last().url, "ws://h/chat?room=1&wsalive_resume=tok1&wsalive_recv=3");
  last().open();
  last().receive(welcome({ resumed: true, token: "tok2", recv: 2 }));
  assert.deepEqual(last().sent, ["u3", "u4", "u5"]);
  assert.deepEqual(events.at(-1), { type: "resumed", resent: 2 });
  // The replay continues the down count.
  last().receive("d4");
  clock.advance(ACK_DELAY);
  assert.equal(last().sent.at(-1), `${CONTROL}a4`);
  // The next resume uses the newest token and counts.
  last().drop(1006);
  clock.advance(events.at(-1).delay);
  assert.equal(last().url, "ws://h/chat?room=1&wsalive_resume=tok2&wsalive_recv=4");
  assert.equal(types().includes("statelost"), false);
});

test("resume: a refusal starts a fresh session and reports the lost state", () => {
  for (const code of [4900, 4901, 4902, 4903, 4904, 4905, 4906]) {
    const { c, clock, last, events, types } = setup({ resume: true });
    last().open();
    last().receive(welcome());
    c.send("u1");
    last().drop(1006);
    clock.advance(events.at(-1).delay);
    assert.match(last().url, /wsalive_resume=tok1&wsalive_recv=0$/);
    last().open();
    last().drop(code, "resume: refused"); // before any welcome
    const lost = events.find((e) => e.type === "statelost");
    assert.deepEqual(lost, { type: "statelost", code, reason: "resume: refused", unacked: ["u1"] }, `code ${code}`);
    assert.equal(types().at(-1), "reconnecting");
    clock.advance(events.at(-1).delay);
    assert.match(last().url, /wsalive_resume=new$/);
    last().open();
    last().receive(welcome({ token: "fresh" }));
    assert.equal(events.at(-1).type, "open");
    assert.deepEqual(last().sent, [], "lost messages are the app's to resend");
  }
});

test("resume: a close frame from the server ends the session", () => {
  const { clock, last, events } = setup({ resume: true });
  last().open();
  last().receive(welcome());
  last().drop(1012, "service restart");
  assert.deepEqual(events.slice(-2).map((e) => e.type), ["statelost", "reconnecting"]);
  clock.advance(events.at(-1).delay);
  assert.match(last().url, /wsalive_resume=new$/);
});

test("resume: a route without resume gives an ordinary connection", () => {
  const { c, last, events } = setup({ resume: true });
  last().open();
  last().receive(JSON.stringify({ wsalive: "welcome", v: 1, resume: false }));
  assert.deepEqual(events.at(-1), { type: "open", resumable: false });
  c.send("x");
  last().receive("reply");
  assert.deepEqual(last().sent, ["x"], "no acks without a session");
  assert.equal(c.session, null);
});

test("resume: a first message that is not a welcome closes and reports", () => {
  const { last, events } = setup({ resume: true });
  last().open();
  last().receive("hello from a backend");
  assert.equal(last().closedWith.code, 1000);
  last().drop(1000); // the server answers the close
  assert.equal(events.at(-1).type, "close");
  assert.match(events.at(-1).reason, /no welcome/);
});

test("app pings: interval, RTT, reply not delivered, timeout drops and resumes", () => {
  const appPing = { interval: 1000, timeout: 500, message: "ping", reply: "pong" };
  const { clock, sockets, last, events, types } = setup({ resume: true, appPing });
  last().open();
  last().receive(welcome());
  clock.advance(1000);
  assert.deepEqual(last().sent, ["ping"]);
  clock.advance(30);
  last().receive("pong");
  assert.deepEqual(events.at(-1), { type: "pong", rtt: 30 });
  assert.equal(types().includes("message"), false, "the reply is not a message");
  // The pings are not counted as session messages.
  assert.equal(last().sent.length, 1);
  clock.advance(970);
  assert.deepEqual(last().sent, ["ping", "ping"]);
  const first = last();
  clock.advance(500); // no reply: the connection is dead
  assert.equal(types().at(-1), "reconnecting");
  assert.equal(first.closedWith, null, "a session's socket is not closed with a close frame");
  clock.advance(events.at(-1).delay);
  assert.equal(sockets.length, 2);
  assert.match(last().url, /wsalive_resume=tok1&wsalive_recv=0$/);
  last().open();
  last().receive(welcome({ resumed: true, token: "tok2" }));
  assert.notEqual(first.closedWith, null, "the stale socket is closed once the session moved");
});

test("a malformed URL throws from the constructor", () => {
  class Throwing {
    constructor() {
      throw new SyntaxError("bad url");
    }
  }
  assert.throws(() => new WsaliveClient("nope", { WebSocket: Throwing }), /bad url/);
});
