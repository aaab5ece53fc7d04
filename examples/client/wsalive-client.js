// wsalive-client.js: a reconnecting WebSocket for apps behind wsalive.
//
// One dependency-free ES module for browsers and Node. It reconnects with
// exponential backoff and full jitter, honours close codes, can send
// application-level pings (browsers cannot send protocol pings), and, on a
// route with a `resume` block, resumes its session after a network switch
// without losing or doubling a message (the wire protocol is RESUME.md,
// beside this file).
//
//   import { WsaliveClient } from "./wsalive-client.js";
//
//   const c = new WsaliveClient("wss://chat.example.com/ws?room=1", {
//     resume: true,                                  // opt in (RESUME.md)
//     appPing: { interval: 15000, timeout: 10000,    // match the route's app_ping
//                message: '{"type":"ping"}', reply: '{"type":"pong"}' },
//   });
//   c.on("open", (e) => console.log("open, resumable:", e.resumable));
//   c.on("resumed", (e) => console.log("resumed, resent", e.resent));
//   c.on("statelost", (e) => console.log("server state lost:", e.reason, e.unacked));
//   c.on("reconnecting", (e) => console.log(`retry ${e.attempt} in ${e.delay} ms`));
//   c.on("message", (e) => console.log(e.data));
//   c.on("close", (e) => console.log("gave up:", e.reason));
//   c.send("hello"); // queued while disconnected, sent (once) when connected
//
// In Node, pass the constructor: `new WsaliveClient(url, { WebSocket })`
// with `import { WebSocket } from "ws"` (or Node >= 22's global WebSocket).
//
// Close codes (RFC 6455 §7.4, RESUME.md §6):
//   1000                     stop: the server is done with us
//   1002 1003 1007 1008 1009 1010, 4000-4899 and 4907-4999
//                            stop: retrying would get the same answer
//   4900-4906                resume refused: reconnect afresh after a jittered
//                            delay, and emit "statelost"
//   anything else (1001 going away, 1006 lost connection, 1011, 1012 restart,
//   1013 try again later, 1014 bad gateway, ...)
//                            reconnect after a jittered delay
// `shouldReconnect(code, reason)` overrides this: return true or false, or
// undefined to keep the default.
//
// Sessions: a break without a close frame (code 1006, or an application
// ping timeout) is resumed with the last token; wsalive sends the up count,
// the helper resends what the upstream was not handed, and wsalive replays
// what the app missed. A close frame from the server (a drain's 1012, the
// upstream closing) ends the session: the next connection is fresh and
// "statelost" tells the app. Messages sent but never acknowledged in a lost
// session are handed to the app in `statelost`'s `unacked`, not resent.
//
// Queueing: send() while not connected (or before a session's welcome)
// queues the message. Queued plus unacknowledged messages are bounded by
// `queueLimit` (default 1024); beyond it send() returns false and the
// message is dropped. Without a session, a message handed to a socket that
// then breaks may be lost: only sessions give exactly-once delivery.
//
// Events (register with on(type, fn), which returns an unsubscribe function):
//   open         {resumable}: a fresh connection (and session, if resumable)
//   resumed      {resent}: the session continues; resent = messages resent
//   reconnecting {attempt, delay, code, reason}
//   message      {data}: string, or binary as the WebSocket gives it
//   statelost    {code, reason, unacked}: the server-side session is gone
//   pong         {rtt}: an application ping's round trip, in ms
//   state        {state}: "connecting" | "open" | "reconnecting" | "closing" | "closed"
//   close        {code, reason}: the helper gave up (or close() was called)

/** Protocol constants of RESUME.md. */
export const RESUME_PARAM = "wsalive_resume";
export const RECV_PARAM = "wsalive_recv";
export const REFUSAL_MIN = 4900;
export const REFUSAL_MAX = 4906;
/** Acknowledge after this many received messages (RESUME.md §3). */
export const ACK_EVERY = 32;
/** ...and at least this often (ms) while messages are unacknowledged. */
export const ACK_DELAY = 1000;
/** close() waits this long (ms) for the closing handshake before its close event. */
export const CLOSE_WAIT = 5000;

const STOP_CODES = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010]);

/**
 * defaultShouldReconnect is the close-code policy described at the top of
 * the file.
 */
export function defaultShouldReconnect(code) {
  if (STOP_CODES.has(code)) return false;
  if (code >= REFUSAL_MIN && code <= REFUSAL_MAX) return true;
  if (code >= 4000 && code <= 4999) return false;
  return true;
}

/**
 * backoffDelay is full jitter (AWS architecture blog, "Exponential Backoff
 * And Jitter"): a uniformly random delay in [0, min(cap, base * 2^attempt)),
 * which spreads a crowd of clients that lost the same server.
 */
export function backoffDelay(attempt, { base, cap }, random) {
  const ceiling = Math.min(cap, base * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

export class WsaliveClient {
  /**
   * @param {string} url absolute ws:// or wss:// URL
   * @param {object} [opts]
   * @param {Function} [opts.WebSocket] constructor; default globalThis.WebSocket
   * @param {string|string[]} [opts.protocols] subprotocols to offer
   * @param {boolean} [opts.resume=false] ask for a resumable session
   * @param {{base?:number,cap?:number,maxAttempts?:number}} [opts.backoff]
   *        ms; defaults 500, 30000, Infinity (consecutive failed attempts)
   * @param {(code:number, reason:string)=>boolean|undefined} [opts.shouldReconnect]
   * @param {{interval:number,message:string,reply?:string,timeout?:number}} [opts.appPing]
   *        send `message` every `interval` ms; a received `reply` gives the
   *        RTT and is not delivered; no reply within `timeout` (0: never)
   *        counts the connection as dead (resumed if there is a session)
   * @param {number} [opts.queueLimit=1024]
   * @param {string} [opts.binaryType="arraybuffer"]
   * @param {{now:()=>number,setTimeout:Function,clearTimeout:Function}} [opts.clock]
   * @param {()=>number} [opts.random] in [0, 1); default Math.random
   */
  constructor(url, opts = {}) {
    this.url = url;
    this.WebSocket = opts.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== "function") {
      throw new TypeError("wsalive-client: no WebSocket constructor; pass opts.WebSocket");
    }
    this.protocols = opts.protocols;
    this.resume = !!opts.resume;
    this.backoff = { base: 500, cap: 30000, maxAttempts: Infinity, ...opts.backoff };
    this.shouldReconnect = opts.shouldReconnect;
    this.appPing = opts.appPing && opts.appPing.interval > 0 ? { timeout: 0, ...opts.appPing } : null;
    this.queueLimit = opts.queueLimit ?? 1024;
    this.binaryType = opts.binaryType ?? "arraybuffer";
    const g = globalThis;
    this.clock = opts.clock ?? {
      now: () => Date.now(),
      setTimeout: (fn, ms) => g.setTimeout(fn, ms),
      clearTimeout: (id) => g.clearTimeout(id),
    };
    this.random = opts.random ?? Math.random;

    this.state = "connecting";
    this.listeners = new Map();
    this.attempt = 0; // consecutive failed attempts
    this.pending = []; // messages waiting for a connection
    this.ws = null;
    this.stale = null; // a socket given up on but not closed (see dropSocket)
    this.timers = {};
    this.resetSession();
    this.connect(true);
  }

  /** on registers fn for an event type and returns an unsubscribe function. */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(type, detail) {
    for (const fn of this.listeners.get(type) ?? []) fn(detail);
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", { state });
  }

  /** sessionInfo is what the app may show: whether a session exists, counts. */
  get session() {
    return this.token === null
      ? null
      : { upSent: this.upSent, upAcked: this.upAcked, down: this.down, unacked: this.unacked.length };
  }

  /**
   * send delivers data (string or binary), or queues it while there is no
   * usable connection. It returns false when the queue is full.
   */
  send(data) {
    if (this.state === "closed" || this.state === "closing") throw new Error("wsalive-client: send after close");
    if (this.pending.length + this.unacked.length >= this.queueLimit) return false;
    if (this.ready) this.sendCounted(data);
    else this.pending.push(data);
    return true;
  }

  /**
   * close ends the helper: closes the connection (ending any session) and
   * stops. The close event comes once the connection's closing handshake
   * is over (or after CLOSE_WAIT ms without it), so that an app that exits
   * on it does not cut its own close frame short: a connection that ends
   * without one is, to wsalive, a client that vanished, whose session waits
   * for a resume instead of ending.
   */
  close(code = 1000, reason = "") {
    if (this.state === "closed" || this.state === "closing") return;
    const ws = this.ws;
    this.detach();
    const why = reason || "closed by the application";
    if (!ws) {
      this.finish(code, why);
      return;
    }
    this.setState("closing");
    const done = () => {
      ws.onclose = null;
      if (this.state === "closing") this.finish(code, why);
    };
    ws.onclose = done;
    this.timers.closing = this.clock.setTimeout(done, CLOSE_WAIT);
    ws.close(code, reason);
  }

  // --- connection lifecycle ---------------------------------------------

  resetSession() {
    this.token = null; // token for the next resume; null: no session
    this.control = null; // control prefix
    this.upSent = 0; // messages of ours numbered in this session
    this.upAcked = 0;
    this.unacked = []; // [{n, data}] sent, not yet acknowledged
    this.down = 0; // messages delivered to the app
    this.downAcked = 0; // last down count we acknowledged
  }

  connect(first = false) {
    let url = this.url;
    if (this.resume) {
      const sep = url.includes("?") ? "&" : "?";
      url += this.token === null
        ? `${sep}${RESUME_PARAM}=new`
        : `${sep}${RESUME_PARAM}=${this.token}&${RECV_PARAM}=${this.down}`;
    }
    this.resuming = this.token !== null;
    this.ready = false; // true once messages may be sent
    this.welcomed = false;
    let ws;
    try {
      ws = this.protocols === undefined ? new this.WebSocket(url) : new this.WebSocket(url, this.protocols);
    } catch (err) {
      // A malformed URL fails the same way every time: the constructor
      // throws it; a later failure (the URL did not change, so hardly
      // possible) ends the helper.
      if (first) throw err;
      this.finish(1006, `cannot connect: ${err.message}`);
      return;
    }
    ws.binaryType = this.binaryType;
    this.ws = ws;
    ws.onopen = () => this.onOpen();
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onclose = (ev) => this.onClose(ev.code, ev.reason);
    ws.onerror = () => {}; // a close event follows; it carries what we need
  }

  onOpen() {
    if (this.resume) return; // wait for the welcome
    this.ready = true;
    this.attempt = 0;
    this.setState("open");
    this.startPings();
    this.emit("open", { resumable: false });
    this.flushPending();
  }

  onMessage(data) {
    if (this.resume && !this.welcomed) {
      this.onWelcome(data);
      return;
    }
    if (typeof data === "string") {
      if (this.control !== null && data.startsWith(this.control)) {
        this.onControl(data.slice(this.control.length));
        return;
      }
      if (this.appPing && this.pingSentAt !== null && data === this.appPing.reply) {
        this.onPong();
        return;
      }
    }
    if (this.token !== null) {
      this.down++;
      if (this.down - this.downAcked >= ACK_EVERY) this.sendAck();
      else if (this.timers.ack === undefined) this.timers.ack = this.clock.setTimeout(() => this.sendAck(), ACK_DELAY);
    }
    this.emit("message", { data });
  }

  onWelcome(data) {
    let w = null;
    try {
      w = typeof data === "string" ? JSON.parse(data) : null;
    } catch {}
    if (!w || w.wsalive !== "welcome" || w.v !== 1) {
      // RESUME.md §2: whoever this is, it is not a wsalive that speaks v1.
      this.close(1000, "wsalive-client: no welcome");
      return;
    }
    this.welcomed = true;
    this.attempt = 0;
    if (!w.resume) {
      // The route has no resume block: an ordinary connection.
      this.resetSession();
      this.ready = true;
      this.setState("open");
      this.startPings();
      this.emit("open", { resumable: false });
      this.flushPending();
      return;
    }
    const recv = Number(w.recv);
    if (w.resumed && this.resuming) {
      if (!Number.isInteger(recv) || recv > this.upSent) {
        this.close(1000, "wsalive-client: welcome counts more messages than were sent");
        return;
      }
      this.token = w.token;
      // wsalive trimmed its replay buffer to our wsalive_recv already.
      this.downAcked = this.down;
      this.forget(recv);
      const resend = this.unacked.map((m) => m.data);
      for (const data of resend) this.ws.send(data);
      if (this.stale) this.closeStale();
      this.ready = true;
      this.setState("open");
      this.startPings();
      this.emit("resumed", { resent: resend.length });
    } else {
      this.resetSession();
      this.token = w.token;
      this.control = w.control;
      if (this.stale) this.closeStale();
      this.ready = true;
      this.setState("open");
      this.startPings();
      this.emit("open", { resumable: true });
    }
    this.flushPending();
  }

  onControl(cmd) {
    if (cmd[0] === "a") {
      const n = Number(cmd.slice(1));
      if (!Number.isInteger(n) || n > this.upSent) {
        this.close(1000, "wsalive-client: acknowledgement beyond what was sent");
        return;
      }
      this.forget(n);
    }
    // Unknown commands are ignored: a later protocol version may add some.
  }

  /** forget drops the copies of messages 1..n, acknowledged by wsalive. */
  forget(n) {
    if (!(n > this.upAcked)) return;
    this.upAcked = n;
    let i = 0;
    while (i < this.unacked.length && this.unacked[i].n <= n) i++;
    this.unacked.splice(0, i);
  }

  sendCounted(data) {
    if (this.token !== null) {
      this.upSent++;
      this.unacked.push({ n: this.upSent, data });
    }
    this.ws.send(data);
  }

  flushPending() {
    const q = this.pending;
    this.pending = [];
    for (const data of q) this.sendCounted(data);
  }

  sendAck() {
    this.clearTimer("ack");
    if (!this.ready || this.down === this.downAcked) return;
    this.downAcked = this.down;
    this.ws.send(`${this.control}a${this.down}`);
  }

  onClose(code, reason) {
    this.detach();
    const hadSession = this.token !== null;
    const refused = code >= REFUSAL_MIN && code <= REFUSAL_MAX;
    // Only a break without a close frame leaves the session on the server.
    if (hadSession && (refused || code !== 1006)) this.loseState(code, reason);
    this.reconnectOrStop(code, reason);
  }

  loseState(code, reason) {
    const unacked = this.unacked.map((m) => m.data);
    this.resetSession();
    this.emit("statelost", { code, reason, unacked });
  }

  reconnectOrStop(code, reason) {
    let again = this.shouldReconnect ? this.shouldReconnect(code, reason) : undefined;
    if (again === undefined) again = defaultShouldReconnect(code);
    if (!again) {
      this.finish(code, `server closed with ${code}${reason ? ` (${reason})` : ""}`);
      return;
    }
    if (this.attempt >= this.backoff.maxAttempts) {
      this.finish(code, `gave up after ${this.attempt} attempts (last close ${code})`);
      return;
    }
    const delay = backoffDelay(this.attempt, this.backoff, this.random);
    this.attempt++;
    this.setState("reconnecting");
    this.emit("reconnecting", { attempt: this.attempt, delay, code, reason });
    this.timers.reconnect = this.clock.setTimeout(() => {
      delete this.timers.reconnect;
      this.setState("connecting");
      this.connect();
    }, delay);
  }

  /**
   * dropSocket gives up on a connection that stopped answering. A browser
   * cannot drop a socket without sending a close frame, and a close frame
   * would end the session; so with a session the socket is left to wsalive,
   * which closes it when the resume takes the session over (RESUME.md §5).
   */
  dropSocket() {
    const ws = this.ws;
    this.detach();
    if (this.token !== null) this.stale = ws;
    else ws.close(4000, "wsalive-client: ping timeout");
    this.reconnectOrStop(1006, "application ping timeout");
  }

  closeStale() {
    try {
      this.stale.close();
    } catch {}
    this.stale = null;
  }

  /** detach stops listening to the current socket and stops its timers. */
  detach() {
    const ws = this.ws;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this.ws = null;
    this.ready = false;
    for (const name of Object.keys(this.timers)) this.clearTimer(name);
    this.pingSentAt = null;
  }

  finish(code, reason) {
    this.detach();
    if (this.stale) this.closeStale();
    this.setState("closed");
    this.emit("close", { code, reason });
  }

  clearTimer(name) {
    if (this.timers[name] !== undefined) this.clock.clearTimeout(this.timers[name]);
    delete this.timers[name];
  }

  // --- application pings --------------------------------------------------

  startPings() {
    this.pingSentAt = null;
    if (!this.appPing) return;
    this.timers.ping = this.clock.setTimeout(() => this.sendPing(), this.appPing.interval);
  }

  sendPing() {
    delete this.timers.ping;
    // While a ping is unanswered, later pings do not restart its clock: the
    // RTT and the timeout count from the oldest one.
    if (this.pingSentAt === null) this.pingSentAt = this.clock.now();
    this.ws.send(this.appPing.message);
    if (this.appPing.timeout > 0 && this.timers.pingTimeout === undefined) {
      this.timers.pingTimeout = this.clock.setTimeout(() => {
        delete this.timers.pingTimeout;
        this.dropSocket();
      }, this.appPing.timeout);
    }
    this.timers.ping = this.clock.setTimeout(() => this.sendPing(), this.appPing.interval);
  }

  onPong() {
    const rtt = this.clock.now() - this.pingSentAt;
    this.pingSentAt = null;
    this.clearTimer("pingTimeout");
    this.emit("pong", { rtt });
  }
}
