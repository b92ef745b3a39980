#!/usr/bin/env python3
"""A hostile client against a running local cluster (Cluster/up or the test suite's).

Usage: hostile_http.py CLUSTER_DIR [--seed N] [--fuzz-seconds S]

Speaks raw HTTP/1.1 over TLS to a coordinator's client API and (with a coordinator's
certificate) to a storage node, and checks what Docs/api.md promises a client that breaks
the rules: every refusal is a JSON body {error: {code, message}} with a documented code and a 4xx
status (never a 5xx for the client's mistake, never an internal type name), limits and
timeouts hold against slow clients, sign-ins are rate limited, and a seeded fuzzer of
malformed requests finds no 5xx, no undocumented error body and no daemon that stops
answering. Prints one line per check and exits 1 if any failed.
"""
import base64
import json
import os
import random
import socket
import ssl
import sys
import threading
import time

CODES = {
    "bad_request", "invalid_argument", "limit_exceeded", "timeout", "rate_limited", "range_not_satisfiable",
    "unauthenticated", "forbidden", "not_found", "conflict", "name_taken", "key_changing", "key_changed", "quota_exceeded", "weak_parameters", "node_full",
    "unavailable", "checksum_mismatch", "corrupt", "link_taken_down", "file_taken_down", "account_suspended",
    "transfer_quota_exceeded",
}
failures = []


def check(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail), flush=True)
    if not ok:
        failures.append(name)


class Target:
    def __init__(self, url, ca, cert=None, key=None):
        host_port = url.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.context = ssl.create_default_context(cafile=ca)
        self.context.set_alpn_protocols(["http/1.1"])
        if cert:
            self.context.load_cert_chain(cert, key)

    def connect(self, timeout=10):
        raw = socket.create_connection((self.host, self.port), timeout=timeout)
        return self.context.wrap_socket(raw, server_hostname="127.0.0.1")

    def exchange(self, data, timeout=10, half_close=False):
        """Sends raw bytes, reads the answer until the connection closes or one response is
        whole; returns (status, headers, body) or (None, ..) when nothing came back."""
        sock = self.connect(timeout)
        try:
            sock.sendall(data)
            if half_close:
                # TCP's half-close under the TLS layer (SSLSocket.shutdown would drop TLS).
                socket.socket.shutdown(sock, socket.SHUT_WR)
            return read_response(sock, timeout)
        finally:
            try:
                sock.close()
            except OSError:
                pass


def read_response(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            headers = parse_headers(head)
            length = int(headers.get("content-length", "-1") or -1)
            if length >= 0 and len(rest) >= length:
                break
    if b"\r\n\r\n" not in data:
        return None, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None, {}, b""
    return status, parse_headers(head), body


def parse_headers(head):
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers


def json_error(status, body):
    """The code of a documented JSON error body, or None."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or set(value) != {"error"} or not isinstance(value["error"], dict):
        return None
    value = value["error"]
    # A takedown's refusal also names its notice (Docs/api.md, "Takedowns").
    taken_down = value.get("code") in ("link_taken_down", "file_taken_down")
    if set(value) != ({"code", "message", "takedown"} if taken_down else {"code", "message"}):
        return None
    if value["code"] not in CODES or "Error(" in value["message"] or "NIO" in value["message"]:
        return None
    return value["code"]


def expect_refusal(target, name, data, codes, statuses=range(400, 500), **options):
    status, _, body = target.exchange(data, **options)
    code = json_error(status, body) if status else None
    check(name, status in statuses and code in codes, f"status {status}, body {body[:200]!r}")


def request(method, path, headers=(), body=b"", host="127.0.0.1"):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in headers]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def call(target, method, path, headers=(), body=b""):
    status, response_headers, answer = target.exchange(request(method, path, headers, body))
    return status, response_headers, answer


def malformed(target, label, path="/v1/accounts", method="POST"):
    """The framing and limit cases a fuzzer found, each answered with a JSON error. `path`
    takes a JSON body without authentication, so that its framing is what is refused."""
    expect_refusal(target, f"{label}: Content-Length 1e3", request(method, path, [("Content-Length", "1e3")]), {"bad_request"})
    expect_refusal(target, f"{label}: a 100 KB header", request("GET", "/v1/whoami", [("X-Big", "a" * 100_000)]), {"limit_exceeded", "bad_request"})
    expect_refusal(target, f"{label}: 10,000 headers", request("GET", "/v1/whoami", [(f"X-H{i}", "1") for i in range(10_000)]), {"limit_exceeded", "bad_request"})
    expect_refusal(target, f"{label}: a 1 MB URL", request("GET", "/v1/" + "a" * 1_000_000), {"limit_exceeded", "bad_request"})
    expect_refusal(target, f"{label}: NUL in the path", b"GET /v1/who\x00ami HTTP/1.1\r\nHost: x\r\n\r\n", {"bad_request", "not_found"})
    expect_refusal(target, f"{label}: garbage after the handshake", b"\x16\x03garbage\x00\xff\r\n\r\n", {"bad_request"})
    # NIO's HTTP/1 encoder sends no body on an answer to CONNECT: a 400 that closes is all.
    status, headers, _ = target.exchange(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    check(f"{label}: CONNECT", status == 400 and headers.get("connection") == "close", f"status {status}, {headers}")
    expect_refusal(target, f"{label}: chunk size -5", request(method, path, [("Transfer-Encoding", "chunked")], b"-5\r\nhello\r\n0\r\n\r\n"),
                   {"bad_request"})
    expect_refusal(target, f"{label}: Transfer-Encoding gzip", request(method, path, [("Transfer-Encoding", "gzip")], b"x"),
                   {"bad_request"})
    expect_refusal(target, f"{label}: a chunk without its CRLF", request(method, path, [("Transfer-Encoding", "chunked")], b"5\r\nhelloXX0\r\n\r\n"),
                   {"bad_request"})
    expect_refusal(target, f"{label}: a 100 KB trailer",
                   request(method, path, [("Transfer-Encoding", "chunked")], b"2\r\n{}\r\n0\r\nX-T: " + b"a" * 100_000 + b"\r\n\r\n"),
                   {"bad_request", "limit_exceeded", "invalid_argument"})
    expect_refusal(target, f"{label}: a body cut by a half-close", request(method, path, [("Content-Length", "100")], b"{\"user"),
                   {"bad_request"}, half_close=True)


def arguments():
    """The cluster folder, the seed (printed), the fuzzer's seconds and the cluster's profile."""
    folder = sys.argv[1]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else random.randrange(1 << 32)
    fuzz_seconds = float(sys.argv[sys.argv.index("--fuzz-seconds") + 1]) if "--fuzz-seconds" in sys.argv else 20
    print(f"seed {seed}", flush=True)
    return folder, seed, fuzz_seconds, json.load(open(os.path.join(folder, "profile.json")))


def main():
    folder, seed, fuzz_seconds, profile = arguments()
    ca = profile["ca"]
    token = profile["adminToken"]
    coordinator = Target(profile["coordinators"][0]["url"], ca)
    admin = [("Authorization", "Bearer " + token)]

    # Health, and the admin API's answer to a missing or forged token.
    status, _, body = call(coordinator, "GET", "/v1/health")
    check("coordinator GET /v1/health", status == 200 and json.loads(body).get("status") in ("ok", "degraded"), f"{status} {body[:200]!r}")
    for name, headers in (("no token", []), ("a forged token", [("Authorization", "Bearer " + "x" * len(token))])):
        status, _, body = call(coordinator, "GET", "/v1/admin/status", headers)
        check(f"admin with {name}: 401", status == 401 and json_error(status, body) == "unauthenticated", f"{status} {body[:200]!r}")

    malformed(coordinator, "coordinator")

    # A JSON body over the limit: 413, not a 500 with a type name.
    status, _, body = call(coordinator, "POST", "/v1/accounts", [("Content-Type", "application/json")], b"[" + b"1," * 700_000 + b"1]")
    check("a 1.4 MB JSON body: 413 limit_exceeded", status == 413 and json_error(status, body) == "limit_exceeded", f"{status} {body[:200]!r}")

    # Argon2 parameters an account may publish are bounded.
    account = {"username": "hostile", "authKey": "A" * 43, "passwordSalt": "A" * 22, "keyRecord": "{}",
               "passwordParameters": {"operations": 2 ** 63, "memoryBytes": 64 << 20}}
    status, _, body = call(coordinator, "POST", "/v1/accounts", [("Content-Type", "application/json")], json.dumps(account).encode())
    check("Argon2 passes of 2^63: refused", status == 400 and json_error(status, body) == "invalid_argument", f"{status} {body[:200]!r}")
    account["passwordParameters"] = {"operations": 3, "memoryBytes": 64 << 20}
    account["keyRecord"] = "!!!!"
    status, _, body = call(coordinator, "POST", "/v1/accounts", [("Content-Type", "application/json")], json.dumps(account).encode())
    check("a keyRecord that is not JSON: refused", status == 400 and json_error(status, body) == "invalid_argument", f"{status} {body[:200]!r}")
    account["keyRecord"] = "{}"
    status, _, body = call(coordinator, "POST", "/v1/accounts", [("Content-Type", "application/json")], json.dumps(account).encode())
    check("a well-formed registration", status == 201, f"{status} {body[:200]!r}")

    # Sign-ins are rate limited per account name: 429 with Retry-After.
    login = json.dumps({"username": "hostile", "authKey": "B" * 43}).encode()
    limited = None
    for _ in range(40):
        status, headers, body = call(coordinator, "POST", "/v1/sessions", [("Content-Type", "application/json")], login)
        if status == 429:
            limited = (headers, body)
            break
    check("wrong passwords are slowed down: 429 rate_limited with Retry-After",
          limited is not None and json_error(429, limited[1]) == "rate_limited" and int(limited[0].get("retry-after", "0")) >= 1,
          f"{limited}")

    # An upload declaring 10 TB, over the quota: answered at once, before any body byte.
    status, _, body = call(coordinator, "POST", "/v1/sessions", [("Content-Type", "application/json")],
                           json.dumps({"username": "nobody-" + str(seed), "authKey": "C" * 43}).encode())
    started = time.time()
    sock = coordinator.connect()
    sock.sendall(request("PUT", "/v1/nodes/" + "n" * 22 + "/content", [("Authorization", "Bearer " + "t" * 40), ("Content-Length", str(10 ** 13))]))
    status, _, body = read_response(sock, 8)
    sock.close()
    check("an upload declaring 10 TB is answered at once", status is not None and status < 500 and time.time() - started < 3,
          f"{status} after {time.time() - started:.1f} s")

    # Slow clients: headers one byte a second are cut off, and meanwhile others are served.
    slow = []
    for _ in range(40):
        s = coordinator.connect()
        s.sendall(b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(s)
    stop = threading.Event()

    def drip():
        while not stop.is_set():
            for s in slow:
                try:
                    s.sendall(b"a")
                except OSError:
                    pass
            time.sleep(1)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    worst = 0.0
    deadline = time.time() + 16
    while time.time() < deadline:
        began = time.time()
        status, _, _ = call(coordinator, "GET", "/v1/health")
        worst = max(worst, time.time() - began)
        time.sleep(0.5)
    stop.set()
    closed = 0
    for s in slow:
        try:
            s.settimeout(1)
            s.recv(1)
            closed += 1  # closed (b""), or answered and closed
        except (socket.timeout, ssl.SSLWantReadError):
            pass  # still open
        except OSError:
            closed += 1
        s.close()
    check("40 clients sending headers a byte a second are cut off", closed == len(slow), f"{closed} of {len(slow)} closed")
    check("meanwhile a normal request answers within 2 s", worst < 2, f"worst {worst:.2f} s")

    # Requests in flight: as many stalled bodies as the coordinator serves at once hold it;
    # the next request is shed at once (503 unavailable, Retry-After); when they go, it serves.
    status, _, body = call(coordinator, "GET", "/v1/health")
    stats = json.loads(body).get("connections", {}) if status == 200 else {}
    check("health shows the connection counters", {"open", "refused", "slowHeaders", "slowBodies", "requestsInFlight", "shed"} <= set(stats),
          f"{body[:300]!r}")
    check("the slow-header clients were counted", stats.get("slowHeaders", 0) >= len(slow), f"{stats}")
    limit = stats.get("requestsInFlightMax", 0)
    if 0 < limit <= 64:
        held = []
        for _ in range(limit):
            s = coordinator.connect()
            s.sendall(request("PUT", "/v1/admin/repair/budget", admin + [("Content-Type", "application/json"), ("Content-Length", "100")]) + b'{"bytes')
            held.append(s)
        shed = None
        deadline = time.time() + 5
        while time.time() < deadline and shed is None:
            status, headers, body = call(coordinator, "GET", "/v1/whoami")
            if status == 503:
                shed = (headers, body)
            time.sleep(0.1)
        check(f"with {limit} requests in flight the next is shed: 503 unavailable with Retry-After",
              shed is not None and json_error(503, shed[1]) == "unavailable" and shed[0].get("retry-after") == "1", f"{shed}")
        status, _, _ = call(coordinator, "GET", "/v1/health")
        check("meanwhile health checks are never shed", status == 200, f"{status}")
        for s in held:
            s.close()
        served = False
        deadline = time.time() + 5
        while time.time() < deadline and not served:
            served = call(coordinator, "GET", "/v1/whoami")[0] == 401
            time.sleep(0.1)
        status, _, body = call(coordinator, "GET", "/v1/health")
        after = json.loads(body).get("connections", {}) if status == 200 else {}
        check("when they go it serves again, and counted what it shed", served and after.get("shed", 0) >= 1, f"{after}")
    else:
        check("the test cluster's requests_in_flight_max is small", False, f"{limit}")

    # Uploads whose body stops early, or whose framing is ambiguous, store nothing.
    if "--token" in sys.argv:
        user = [("Authorization", "Bearer " + sys.argv[sys.argv.index("--token") + 1])]
        b64 = lambda n: base64.urlsafe_b64encode(os.urandom(n)).rstrip(b"=").decode()

        def content_headers():
            return user + [("x-coffre-attributes", b64(93)), ("x-coffre-wrapped-key", b64(61)), ("x-coffre-file-key", b64(61)),
                           ("x-coffre-name-tag", b64(16))]

        def state():
            status, _, body = call(coordinator, "GET", "/v1/whoami", user)
            used = json.loads(body)["usedBytes"] if status == 200 else None
            status, _, body = call(coordinator, "GET", "/v1/nodes", user)
            ids = sorted(n["id"] for n in json.loads(body)["nodes"]) if status == 200 else None
            return used, ids

        status, _, body = call(coordinator, "GET", "/v1/admin/status", user)
        check("the admin API refuses a user's session token: 401", status == 401 and json_error(status, body) == "unauthenticated",
              f"{status} {body[:200]!r}")
        before = state()
        node_id = b64(16)
        sock = coordinator.connect()
        sock.sendall(request("PUT", f"/v1/nodes/{node_id}/content", content_headers() + [("Content-Length", str(3 << 20))]))
        sock.sendall(os.urandom(1 << 20))
        sock.close()
        status, _, body = coordinator.exchange(request("PUT", f"/v1/nodes/{b64(16)}/content",
                                                       content_headers() + [("Content-Length", "10"), ("Transfer-Encoding", "chunked")], b"5\r\nhello\r\n0\r\n\r\n"))
        check("an upload with both Content-Length and chunked framing: 400 bad_request",
              status == 400 and json_error(status, body) == "bad_request", f"{status} {body[:200]!r}")
        after = state()
        check("an upload cut after 1 MiB of 3 MiB leaves nothing: no file, no usage", after == before and before[0] is not None,
              f"before {before}, after {after}")
        status, _, body = call(coordinator, "PUT", f"/v1/nodes/{node_id}/content", content_headers(), os.urandom(1000))
        check("the cut upload's node id can be used again", status == 201, f"{status} {body[:200]!r}")
    else:
        check("a session token for the upload cases (--token)", False)

    # The storage node, as a coordinator calls it (mutual TLS).
    status, _, body = call(coordinator, "GET", "/v1/admin/status", admin)
    nodes = json.loads(body)["nodes"] if status == 200 else []
    certs = os.path.join(folder, "certs")
    coordinator_cert = next((f for f in sorted(os.listdir(certs)) if f.startswith("coordinator-") and not f.endswith("-key.pem")), "server.pem")
    if nodes:
        node = Target(nodes[0]["url"], ca, os.path.join(certs, coordinator_cert), os.path.join(certs, coordinator_cert.replace(".pem", "-key.pem")))
        status, _, body = call(node, "GET", "/v1/health")
        check("node GET /v1/health", status == 200, f"{status} {body[:200]!r}")
        malformed(node, "node", path="/v1/fault", method="PUT")
        status, _, body = call(node, "PUT", "/v1/fault", [("Content-Type", "application/json")], b"{" * 5000)
        check("node: a 5 KB fault body: 413", status == 413 and json_error(status, body) == "limit_exceeded", f"{status} {body[:200]!r}")
        targets = [coordinator, node]
    else:
        check("the node list", False, f"{status} {body[:200]!r}")
        targets = [coordinator]

    # The fuzzer: seeded mutations of requests; no 5xx, only documented error bodies, and
    # every daemon keeps answering.
    rng = random.Random(seed)
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW", "G\x00T", ""]
    paths = ["/v1/whoami", "/v1/accounts", "/v1/sessions", "/v1/nodes", "/v1/nodes/abc/content", "/v1/links", "/v1/l/xyz", "/v1/bin",
             "/v1/nodes/abc/trash", "/v1/nodes/abc/restore", "/v1/bin?after=%2e%2e",
             "/v1/l/xyz/content", "/v1/admin/status", "/v1/shards/00ff", "/v1/shards", "/v1/scrub", "/v1/health", "/v1/fault",
             "/%", "/v1/nodes/%2e%2e/content", "*", "/v1/prelogin/" + "a" * 300]
    header_pool = [("Content-Length", lambda: rng.choice(["0", "-1", "1e3", "99999999999999999999", " 5", "5,5"])),
                   ("Transfer-Encoding", lambda: rng.choice(["chunked", "gzip", "chunked, chunked", "identity"])),
                   ("Range", lambda: rng.choice(["bytes=0-1", "bytes=+1-2", "bytes=-0", "bytes=5-1", "bytes=0-1,2-3", "items=1-2"])),
                   ("Authorization", lambda: rng.choice(["Bearer", "Bearer " + "x" * 200, "Basic abc", "Bearer \x01"])),
                   ("Content-Type", lambda: rng.choice(["application/json", "text/html", "\xff"])),
                   ("x-coffre-crc32c", lambda: rng.choice(["zz", "00000000", "1" * 9]))]
    bodies = [b"", b"{}", b"{", b"null", b"[]", b'{"username": 5}', bytes(rng.randrange(256) for _ in range(64)), b"0\r\n\r\n"]
    sent = errors = 0
    deadline = time.time() + fuzz_seconds
    while time.time() < deadline:
        target = rng.choice(targets)
        headers = [(name, value()) for name, value in rng.sample(header_pool, rng.randrange(len(header_pool)))]
        data = request(rng.choice(methods), rng.choice(paths), headers, rng.choice(bodies))
        if rng.random() < 0.2:
            cut = rng.randrange(len(data))
            data = data[:cut] + bytes([rng.randrange(256)]) + data[cut + 1:]
        status, _, body = target.exchange(data, timeout=1, half_close=rng.random() < 0.1)
        sent += 1
        if status is None:
            continue
        if status >= 500 or (status >= 400 and json_error(status, body) is None):
            errors += 1
            if errors <= 5:
                print(f"  fuzz: {data[:160]!r} -> {status} {body[:200]!r}", flush=True)
    alive = all(call(t, "GET", "/v1/health")[0] == 200 for t in targets)
    print(f"fuzz: {sent} requests in {fuzz_seconds:.0f} s, {errors} bad answers", flush=True)
    check("fuzzer: no 5xx and no undocumented error body", errors == 0, f"{errors} of {sent}")
    check("fuzzer: every daemon still answers", alive)
    print(f"{len(failures)} failed" if failures else "all passed", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
