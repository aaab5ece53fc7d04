// The client helper's end-to-end scenario against `wsalive demo`, run by
// headless Chromium (demo_chromium_linux_test.go) and by Node with the ws
// package (demo_node_test.go): send, receive ticks and app-ping pongs, cut
// the connection through the demo's link, send while away, and come back.
// It returns everything it saw; the Go tests judge it.
//
// With refuse, the helper's session token is replaced by one wsalive never
// issued before the cut: the resume must be refused (4900), and the helper
// must report the lost state and start a fresh session.
export async function runScenario({ WsaliveClient, WebSocket, httpBase, wsBase, refuse = false }) {
  const r = { events: [], ticks: [], echoes: [], error: "" };
  const waitFor = (cond, what) =>
    new Promise((ok, fail) => {
      const t0 = Date.now();
      const poll = () =>
        cond() ? ok() : Date.now() - t0 > 20000 ? fail(new Error("timed out waiting for " + what)) : setTimeout(poll, 20);
      poll();
    });
  try {
    const info = await (await fetch(httpBase + "/demo/info")).json();
    r.resume = info.resume;
    const c = new WsaliveClient(wsBase + "/ticks", {
      WebSocket,
      resume: info.resume,
      // A reconnect after ~1.5 s: the backend pushes at least one tick
      // into the gap, which a resume must replay.
      backoff: { base: 1500, cap: 1500 },
      random: () => 0.999,
      appPing: { interval: 300, message: info.app_ping_match, reply: info.app_ping_reply },
    });
    for (const type of ["open", "resumed", "reconnecting", "statelost", "close"]) {
      c.on(type, () => r.events.push(type));
    }
    c.on("statelost", (e) => {
      r.lostCode = e.code;
    });
    // Time from the reconnect's WebSocket to the first message after it.
    let connectingAt = 0;
    let firstAfter = false;
    c.on("state", (e) => {
      if (e.state === "connecting") connectingAt = Date.now();
      if (e.state === "reconnecting") {
        r.gapFrom = Date.now();
        firstAfter = true;
      }
    });
    c.on("message", () => {
      if (firstAfter && connectingAt > r.gapFrom) {
        firstAfter = false;
        r.gapMs = Date.now() - r.gapFrom;
        r.reconnectToFirstMs = Date.now() - connectingAt;
      }
    });
    c.on("pong", (e) => {
      r.rtt = e.rtt;
    });
    c.on("message", (e) => {
      const text = typeof e.data === "string" ? e.data : "";
      const m = text.startsWith("{") ? JSON.parse(text) : null;
      if (m && typeof m.tick === "number") r.ticks.push(m.tick);
      else r.echoes.push(text);
    });
    c.send("before");
    await waitFor(() => r.echoes.includes("before") && r.ticks.length >= 2 && r.rtt !== undefined, "echo, ticks and a pong");
    if (refuse) c.token = "A".repeat(22); // 128 bits wsalive never issued
    r.cut = Number(await (await fetch(httpBase + "/demo/cut", { method: "POST" })).text());
    await waitFor(() => r.events.includes("reconnecting"), "the helper to notice the cut");
    c.send("while-away");
    const before = r.ticks.length;
    await waitFor(
      () =>
        r.events.filter((e) => e === "open" || e === "resumed").length >= 2 &&
        r.echoes.includes("while-away") &&
        r.ticks.length >= before + 3,
      "reconnect, echo and ticks",
    );
    c.close();
    // The close event follows the closing handshake.
    await waitFor(() => r.events.includes("close"), "the close handshake");
  } catch (err) {
    r.error = String(err);
  }
  return r;
}
