#!/usr/bin/env python3
"""wss_client.py: a WebSocket client built on Python's websockets package,
used by wsalive's end-to-end tests (proxy/e2e/tls_test.go) to talk through
wsalive over TLS.

    python3 wss_client.py <url> <ca-file|-> <mode> [cert-file key-file]

It trusts only the CA in ca-file (for a wss:// URL), presents the client
certificate when one is given, offers permessage-deflate and the
subprotocols "a.v1" and "b.v2". Modes:

    echo            send text and binary messages of every size in SIZES,
                    check each echo byte for byte, then close with 4001
                    "py-bye"
    upstream-close  ask the echo server to close with 4002 "later"
    connect         connect and close with 1000

It prints one line per event:

    CONNECTED protocol=<subprotocol> extensions=<Sec-WebSocket-Extensions>
    ECHO <text|binary> <bytes>
    CLOSED <code> <reason>
    ERROR <exception type>: <message>

and exits 0 when everything matched, 1 otherwise.
"""

import asyncio
import random
import ssl
import sys

import websockets

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]

# Letters 'a' to 'p' from the low four bits of each byte: valid UTF-8.
LETTERS = bytes(ord("a") + (i & 0x0F) for i in range(256))


def payload(kind, size, seed):
    """Deterministic bytes for a message: the same arguments give the same
    bytes, so a mismatch points at the relay, not the generator."""
    raw = random.Random(f"{kind}-{size}-{seed}").randbytes(size)
    if kind == "text":
        return raw.translate(LETTERS).decode("ascii")
    return raw


def first_difference(got, want):
    if len(got) != len(want):
        return f"{len(got)} bytes, want {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f"first difference at byte {i} of {len(want)}"
    return "differs"


async def run(url, ca_file, mode, cert, key):
    context = None
    if url.startswith("wss://"):
        context = ssl.create_default_context(cafile=None if ca_file == "-" else ca_file)
        if cert:
            context.load_cert_chain(cert, key)
    async with websockets.connect(
        url,
        ssl=context,
        subprotocols=["a.v1", "b.v2"],
        extra_headers={"X-Test": "python-client"},
        max_size=32 << 20,
        ping_interval=None,  # wsalive's heartbeats are what is under test
        open_timeout=10,
        close_timeout=10,
    ) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        print(f"CONNECTED protocol={ws.subprotocol or ''} extensions={ext}", flush=True)
        if mode == "echo":
            seed = 0
            for kind in ("text", "binary"):
                for size in SIZES:
                    seed += 1
                    want = payload(kind, size, seed)
                    await ws.send(want)
                    got = await ws.recv()
                    if type(got) is not type(want):
                        raise AssertionError(f"{kind} {size}: echo is {type(got).__name__}")
                    if got != want:
                        raise AssertionError(f"{kind} {size}: {first_difference(got, want)}")
                    print(f"ECHO {kind} {size}", flush=True)
            await ws.close(4001, "py-bye")
            print(f"CLOSED {ws.close_code} {ws.close_reason}", flush=True)
        elif mode == "upstream-close":
            await ws.send("close 4002 later")
            try:
                msg = await ws.recv()
                raise AssertionError(f"got a message {msg!r} instead of a close")
            except websockets.ConnectionClosed as e:
                rcvd = e.rcvd
                print(f"CLOSED {rcvd.code if rcvd else 'none'} {rcvd.reason if rcvd else ''}", flush=True)
        elif mode == "connect":
            await ws.close(1000, "")
            print(f"CLOSED {ws.close_code} {ws.close_reason}", flush=True)
        else:
            raise ValueError(f"unknown mode {mode!r}")


def main():
    if len(sys.argv) not in (4, 6):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    url, ca_file, mode = sys.argv[1:4]
    cert, key = (sys.argv[4], sys.argv[5]) if len(sys.argv) == 6 else (None, None)
    try:
        # Give up well before the Go test's own bound.
        asyncio.run(asyncio.wait_for(run(url, ca_file, mode, cert, key), 90))
    except Exception as e:  # reported to the test, which decides
        print(f"ERROR {type(e).__name__}: {e}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
