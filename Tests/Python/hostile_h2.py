#!/usr/bin/env python3
"""HTTP/2 hostile client against a real coordinator and a real storage node (over TLS, h2 by
ALPN; the node with a coordinator's certificate, as coordinators call it).

Named cases: requests answered over HTTP/2 with the documented JSON errors; a connection that
never finishes its TLS handshake is closed; rapid reset (streams opened and cancelled by the
thousand), a CONTINUATION flood, more streams than allowed, and frames that break the protocol
leave every daemon answering others within 2 s. Then a seeded fuzzer of frame sequences finds
no 5xx, no undocumented error body and no daemon that stops.

    python3 Tests/Python/hostile_h2.py CLUSTER_DIR [--seed N] [--fuzz-seconds S] [--slow]

`--slow` adds the idle case (a connection that speaks HTTP/2 and then never writes is closed:
idle GOAWAY after 75 s, then nothing moves for 85 s: within 170 s).
"""
import json
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame,
                              SettingsFrame, WindowUpdateFrame)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostile_http as base  # noqa: E402  (check, json_error, failures)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class H2Target(base.Target):
    """A target spoken to over HTTP/2 (ALPN h2)."""

    def __init__(self, url, ca, cert=None, key=None):
        super().__init__(url, ca, cert, key)
        self.context.set_alpn_protocols(["h2"])

    def connect(self, timeout=10):
        sock = super().connect(timeout)
        assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
        return sock


def headers_frame(stream, method, path, extra=(), end_stream=True, end_headers=True, encoder=None):
    encoder = encoder or hpack.Encoder()
    block = encoder.encode([(":method", method), (":path", path), (":scheme", "https"), (":authority", "127.0.0.1")] + list(extra))
    frame = HeadersFrame(stream, data=block)
    if end_stream:
        frame.flags.add("END_STREAM")
    if end_headers:
        frame.flags.add("END_HEADERS")
    return frame.serialize()


def raw_frame(kind, flags, stream, payload):
    """A frame as bytes, whatever its fields (hyperframe refuses some on purpose)."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def head_streams(data):
    """The streams a byte string of frames opens with a HEAD request, read back from the bytes
    themselves (a mutation may have moved a frame to another stream): their answers carry no
    body, errors included (RFC 9110). A header block that does not decode counts as no request."""
    heads, at = set(), 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at:at + 3], "big")
        kind, flags = data[at + 3], data[at + 4]
        stream = int.from_bytes(data[at + 5:at + 9], "big") & 0x7FFFFFFF
        payload = data[at + 9:at + 9 + length]
        at += 9 + length
        if kind != 1:
            continue
        if flags & 0x8:  # PADDED
            if not payload or payload[0] > len(payload) - 1:
                continue
            payload = payload[1:len(payload) - payload[0]]
        if flags & 0x20:  # PRIORITY
            payload = payload[5:]
        try:
            fields = hpack.Decoder().decode(payload, raw=True)
        except Exception:
            continue
        if (b":method", b"HEAD") in fields:
            heads.add(stream)
    return heads


def opening():
    return PREFACE + SettingsFrame(0).serialize()


def read_answers(sock, seconds):
    """Reads frames until the connection closes, a GOAWAY, or `seconds` pass; returns
    ({stream: (status, body)}, goaway error code or None, closed)."""
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 1 << 16
    answers, pending, buffer, goaway, closed = {}, {}, b"", None, False
    deadline = time.time() + seconds
    sock.settimeout(0.2)
    while time.time() < deadline:
        try:
            chunk = sock.recv(1 << 16)
        except (socket.timeout, ssl.SSLWantReadError):
            if answers and all(s in answers and answers[s][2] for s in answers):
                break
            continue
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        buffer += chunk
        while len(buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
            if len(buffer) < 9 + length:
                break
            frame.parse_body(memoryview(buffer[9:9 + length]))
            buffer = buffer[9 + length:]
            if isinstance(frame, (HeadersFrame, ContinuationFrame)):
                pending[frame.stream_id] = pending.get(frame.stream_id, b"") + frame.data
                if "END_HEADERS" in frame.flags:
                    fields = dict(decoder.decode(pending.pop(frame.stream_id)))
                    status = int(fields.get(":status", fields.get(b":status", 0)))
                    answers[frame.stream_id] = [status, b"", "END_STREAM" in frame.flags]
            elif isinstance(frame, DataFrame) and frame.stream_id in answers:
                answers[frame.stream_id][1] += frame.data
                answers[frame.stream_id][2] = "END_STREAM" in frame.flags
            elif isinstance(frame, GoAwayFrame):
                goaway = frame.error_code
            elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                ack = PingFrame(0, frame.opaque_data)
                ack.flags.add("ACK")
                try:
                    sock.sendall(ack.serialize())
                except OSError:
                    pass
        if goaway is not None and not any(not a[2] for a in answers.values()):
            break
    return {s: (a[0], a[1]) for s, a in answers.items()}, goaway, closed


def exchange(target, data, seconds=5):
    sock = target.connect()
    try:
        sock.sendall(opening() + data)
        return read_answers(sock, seconds)
    except OSError:
        return {}, None, True
    finally:
        sock.close()


def bad_answers(answers):
    """The answers that break the rules: a 5xx, or an error without the documented body."""
    return {s: (st, b[:160]) for s, (st, b) in answers.items() if st >= 500 or (st >= 400 and base.json_error(st, b) is None)}


def served_quickly(target, path="/v1/health"):
    began = time.time()
    answers, _, _ = exchange(target, headers_frame(1, "GET", path), seconds=5)
    return answers.get(1, (None,))[0] == 200 and time.time() - began < 2, time.time() - began


def main():
    folder, seed, fuzz_seconds, profile = base.arguments()
    ca = profile["ca"]
    coordinator = H2Target(profile["coordinators"][0]["url"], ca)
    certs = os.path.join(folder, "certs")
    cert = next(f for f in sorted(os.listdir(certs)) if f.startswith("coordinator-") and not f.endswith("-key.pem"))
    admin = base.Target(profile["coordinators"][0]["url"], ca)
    status, _, body = base.call(admin, "GET", "/v1/admin/status", [("Authorization", "Bearer " + profile["adminToken"])])
    node_url = json.loads(body)["nodes"][0]["url"]
    node = H2Target(node_url, ca, os.path.join(certs, cert), os.path.join(certs, cert.replace(".pem", "-key.pem")))
    targets = [("coordinator", coordinator), ("node", node)]

    # A TCP connection that never starts TLS is closed after the header timeout (10 s).
    host, port = coordinator.host, coordinator.port
    silent = socket.create_connection((host, port))
    silent_opened = time.time()
    silent_closed = []

    def watch_silent():
        silent.settimeout(30)
        try:
            silent.recv(1)
        except OSError:
            pass
        silent_closed.append(time.time() - silent_opened)

    watcher = threading.Thread(target=watch_silent, daemon=True)
    watcher.start()

    for name, target in targets:
        answers, _, _ = exchange(target, headers_frame(1, "GET", "/v1/health"))
        base.check(f"{name}: GET /v1/health over HTTP/2", answers.get(1, (0,))[0] == 200, f"{answers}")
        answers, _, _ = exchange(target, headers_frame(1, "GET", "/v1/nowhere"))
        status, body = answers.get(1, (0, b""))
        base.check(f"{name}: an unknown path over HTTP/2: 404 not_found", status == 404 and base.json_error(status, body) == "not_found",
                   f"{status} {body[:160]!r}")

    # A JSON body declared over its limit, over HTTP/2: refused before it is read.
    frames = headers_frame(1, "POST", "/v1/accounts", [("content-type", "application/json"), ("content-length", "1400000")], end_stream=False)
    frames += DataFrame(1, data=b"[1,1,1,1,").serialize()
    answers, _, _ = exchange(coordinator, frames, seconds=10)
    status, body = answers.get(1, (0, b""))
    base.check("coordinator: a 1.4 MB JSON body over HTTP/2: 413 limit_exceeded", status == 413 and base.json_error(status, body) == "limit_exceeded",
               f"{status} {body[:160]!r}")

    for name, target in targets:
        # Rapid reset: streams opened and cancelled at once, by the thousand.
        data = b"".join(headers_frame(2 * i + 1, "GET", "/v1/health") + RstStreamFrame(2 * i + 1, error_code=8).serialize() for i in range(1000))
        answers, goaway, closed = exchange(target, data, seconds=5)
        ok, took = served_quickly(target)
        base.check(f"{name}: rapid reset (1000 streams opened and cancelled): others served within 2 s", ok and not bad_answers(answers),
                   f"{took:.2f} s, goaway {goaway}, bad {bad_answers(answers)}")

        # CONTINUATION flood: one header block that never ends.
        encoder = hpack.Encoder()
        data = headers_frame(1, "GET", "/v1/health", end_headers=False, encoder=encoder)
        filler = encoder.encode([("x-flood", "a" * 1000)])
        data += b"".join(ContinuationFrame(1, data=filler).serialize() for _ in range(2000))
        answers, goaway, closed = exchange(target, data, seconds=5)
        ok, took = served_quickly(target)
        base.check(f"{name}: a CONTINUATION flood (2 MB of headers) is refused; others served within 2 s",
                   (goaway is not None or closed or bad_answers(answers) == {}) and ok and not answers.get(1, (0,))[0] == 200,
                   f"{took:.2f} s, goaway {goaway}, closed {closed}, answers {answers}")

        # More streams than allowed at once: bodies that never come.
        data = b"".join(headers_frame(2 * i + 1, "PUT", "/v1/fault" if name == "node" else "/v1/accounts",
                                      [("content-type", "application/json"), ("content-length", "100")], end_stream=False)
                        for i in range(300))
        sock = target.connect()
        sock.sendall(opening() + data)
        ok, took = served_quickly(target)
        answers, goaway, closed = read_answers(sock, 1)
        sock.close()
        base.check(f"{name}: 300 streams left open on one connection: others served within 2 s", ok and not bad_answers(answers),
                   f"{took:.2f} s, bad {bad_answers(answers)}")

        # Frames that break the protocol: each gets the connection closed, nothing else.
        broken = {
            "DATA on stream 0": struct.pack(">I", 5)[1:] + bytes([0, 1]) + struct.pack(">I", 0) + b"hello",
            "WINDOW_UPDATE of 0": WindowUpdateFrame(0, window_increment=1).serialize()[:-4] + b"\0\0\0\0",
            "a PING of 7 bytes": struct.pack(">I", 7)[1:] + bytes([6, 0]) + struct.pack(">I", 0) + b"1234567",
            "a frame over the size limit": struct.pack(">I", 1 << 20)[1:] + bytes([0, 0]) + struct.pack(">I", 1) + b"x" * (1 << 20),
            "SETTINGS_INITIAL_WINDOW_SIZE of 2^31": struct.pack(">I", 6)[1:] + bytes([4, 0]) + struct.pack(">I", 0) + struct.pack(">HI", 4, 1 << 31),
            "a HEADERS block that is not HPACK": struct.pack(">I", 4)[1:] + bytes([1, 5]) + struct.pack(">I", 1) + b"\xff\xff\xff\xff",
            "uppercase header names": headers_frame(1, "GET", "/v1/health", [("X-Upper", "1")]),
            "a connection-specific header": headers_frame(1, "GET", "/v1/health", [("connection", "keep-alive")]),
        }
        for label, frame in broken.items():
            answers, goaway, closed = exchange(target, frame, seconds=3)
            base.check(f"{name}: {label}: no 5xx, no undocumented body", not bad_answers(answers), f"{bad_answers(answers)}")
        ok, took = served_quickly(target)
        base.check(f"{name}: after the broken frames it answers within 2 s", ok, f"{took:.2f} s")

    # The fuzzer: seeded sequences of frames, mutated; no 5xx, only documented error bodies.
    rng = random.Random(seed)
    paths = ["/v1/health", "/v1/whoami", "/v1/accounts", "/v1/nodes", "/v1/shards/00ff", "/v1/shards", "/v1/fault", "/v1/scrub",
             "/v1/admin/status", "/%", "/v1/l/x/content", "*"]
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "CONNECT", "BREW", ""]
    extras = [("content-length", lambda: rng.choice(["0", "-1", "1e3", "99999999999999999999", "5"])),
              ("content-type", lambda: rng.choice(["application/json", "text/plain"])),
              ("range", lambda: rng.choice(["bytes=0-1", "bytes=+1-2", "bytes=5-1", "bytes=0-1,2-3"])),
              ("authorization", lambda: rng.choice(["Bearer", "Bearer " + "x" * 200, "Basic a"])),
              ("te", lambda: rng.choice(["trailers", "gzip"])),
              ("x-coffre-crc32c", lambda: rng.choice(["zz", "00000000"]))]
    sent = errors = 0
    deadline = time.time() + fuzz_seconds
    while time.time() < deadline:
        name, target = rng.choice(targets)
        data = b""
        for _ in range(rng.randrange(1, 6)):
            stream = rng.choice([1, 1, 3, 0, 2, 5])
            kind = rng.randrange(6)
            if kind <= 1:
                headers = [(h, v()) for h, v in rng.sample(extras, rng.randrange(len(extras)))]
                method = rng.choice(methods)
                block = hpack.Encoder().encode(
                    [(":method", method), (":path", rng.choice(paths)), (":scheme", "https"), (":authority", "x")] + headers)
                data += raw_frame(1, 4 | (1 if rng.random() < 0.6 else 0), stream, block)
            elif kind == 2:
                data += raw_frame(0, 1 if rng.random() < 0.7 else 0, stream, bytes(rng.randrange(256) for _ in range(rng.randrange(64))))
            elif kind == 3:
                data += raw_frame(3, 0, stream, struct.pack(">I", rng.randrange(16)))
            elif kind == 4:
                data += raw_frame(8, 0, stream, struct.pack(">I", rng.randrange(1 << 31)))
            else:
                payload = bytes(rng.randrange(256) for _ in range(rng.randrange(32)))
                data += raw_frame(rng.randrange(12), rng.randrange(256), stream, payload)
        if rng.random() < 0.2 and data:
            at = rng.randrange(len(data))
            data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
        answers, _, _ = exchange(target, data, seconds=1)
        sent += 1
        heads = head_streams(data)
        bad = {s: answer for s, answer in bad_answers(answers).items() if not (s in heads and answer[1] == b"" and answer[0] < 500)}
        if bad:
            errors += 1
            if errors <= 5:
                print(f"  fuzz {name}: {data[:120]!r} -> {bad}", flush=True)
    alive = all(served_quickly(t)[0] for _, t in targets)
    print(f"fuzz: {sent} connections in {fuzz_seconds:.0f} s, {errors} with bad answers", flush=True)
    base.check("HTTP/2 fuzzer: no 5xx and no undocumented error body", errors == 0, f"{errors} of {sent}")
    base.check("HTTP/2 fuzzer: every daemon still answers", alive)

    watcher.join(timeout=max(0.1, silent_opened + 30 - time.time()))
    closed_at = silent_closed[0] if silent_closed else None
    base.check("a connection that never starts TLS is closed within 15 s", closed_at is not None and closed_at < 15, f"{closed_at}")

    if "--slow" in sys.argv:
        sock = coordinator.connect()
        sock.sendall(opening())
        opened = time.time()
        sock.settimeout(200)
        closed_at = None
        try:
            while sock.recv(1 << 16):
                pass
            closed_at = time.time() - opened
        except OSError:
            closed_at = time.time() - opened
        base.check("an HTTP/2 connection whose client never writes is closed within 170 s",
                   closed_at is not None and closed_at < 170, f"{closed_at}")

    print(f"{len(base.failures)} failed" if base.failures else "all passed", flush=True)
    sys.exit(1 if base.failures else 0)


if __name__ == "__main__":
    main()
