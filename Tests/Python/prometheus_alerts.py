#!/usr/bin/env python3
"""A real Prometheus against a running local cluster: every daemon is scraped, the figures an
upload leaves are there, /livez and /readyz answer, and killing a storage node (SIGKILL)
fires CoffreNodeDown and CoffreDaemonUnreachable through Prometheus's HTTP API.

The rules are Helm/coffre/files/coffre-alerts.yaml with every `for:` shortened to 2 s (their
durations are checked by `promtool test rules`); scrapes and evaluations every second.

Usage: prometheus_alerts.py CLUSTER_FOLDER [--kill "node is-1"] [--rules FILE]
Exit status 0 when every check passed; prints what it measured.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout):
        return 0, b""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, deadline_seconds, probe, interval=0.25):
    """Polls probe() until it returns a true value or the deadline passes; returns (value, seconds)."""
    start = time.monotonic()
    while True:
        value = probe()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > deadline_seconds:
            check(False, f"{what} within {deadline_seconds} s")
            return None, time.monotonic() - start
        time.sleep(interval)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cluster")
    parser.add_argument("--kill", default="node is-1")
    parser.add_argument("--rules", default=os.path.join(ROOT, "Helm", "coffre", "files", "coffre-alerts.yaml"))
    args = parser.parse_args()

    targets_file = os.path.join(args.cluster, "prometheus-targets.json")
    groups = json.load(open(targets_file))
    daemons = [g for g in groups if g["labels"]["job"].startswith("coffre-")]
    check(len(daemons) >= 2, f"{len(daemons)} daemons listed in prometheus-targets.json")

    # Every daemon's probes, straight.
    for group in daemons:
        address = group["targets"][0]
        status, _ = get(f"http://{address}/livez")
        check(status == 200, f"{group['labels']['process']}: /livez 200 (got {status})")
        status, body = get(f"http://{address}/readyz")
        ready = json.loads(body) if body else {}
        check(status == 200 and ready.get("ready") is True, f"{group['labels']['process']}: /readyz ready ({status} {ready})")

    work = tempfile.mkdtemp(prefix="coffre-prometheus-")
    rules = re.sub(r"(\n\s+for: )\S+", r"\g<1>2s", open(args.rules).read())
    open(os.path.join(work, "rules.yaml"), "w").write(rules)
    open(os.path.join(work, "prometheus.yml"), "w").write(json.dumps({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [{"job_name": "coffre", "file_sd_configs": [{"files": [targets_file], "refresh_interval": "5s"}]}],
    }))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "prometheus.log"), "w")
    prometheus = subprocess.Popen(
        ["prometheus", "--config.file", os.path.join(work, "prometheus.yml"), "--storage.tsdb.path", os.path.join(work, "data"),
         "--web.listen-address", f"127.0.0.1:{port}"], stdout=log, stderr=log)
    try:
        run_checks(args, base, groups, daemons)
    finally:
        prometheus.send_signal(signal.SIGTERM)
        try:
            prometheus.wait(10)
        except subprocess.TimeoutExpired:
            prometheus.kill()
    if failures:
        print(f"{len(failures)} checks failed; Prometheus's log: {os.path.join(work, 'prometheus.log')}")
        return 1
    print("every check passed")
    return 0


def query(base, expression):
    status, body = get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
    if status != 200:
        return None
    result = json.loads(body)["data"]["result"]
    return [float(sample["value"][1]) for sample in result]


def run_checks(args, base, groups, daemons):
    wait_for("Prometheus ready", 30, lambda: get(base + "/-/ready")[0] == 200)

    def all_up():
        status, body = get(base + "/api/v1/targets")
        if status != 200:
            return False
        active = json.loads(body)["data"]["activeTargets"]
        return len(active) == len(groups) and all(t["health"] == "up" for t in active)
    _, seconds = wait_for(f"all {len(groups)} targets up", 60, all_up)
    print(f"all {len(groups)} targets up after {seconds:.1f} s", flush=True)

    def value(expression):
        values = query(base, expression)
        return values[0] if values else None

    # What the upload and the link download before this script left behind.
    coffre = len(daemons)
    wait_for("build info of every daemon", 10, lambda: value("count(coffre_build_info)") == coffre)
    for expression, what in [
        ('sum(coffre_http_requests_total{job="coffre-coordinator",route=~".*content.*",code=~"2.."})', "coordinator content requests counted"),
        ('sum(coffre_http_sent_bytes_total{job="coffre-coordinator"})', "coordinator answer bytes counted"),
        ('sum(coffre_http_received_bytes_total{job="coffre-coordinator"})', "coordinator request bytes counted"),
        ('sum(coffre_http_request_duration_seconds_count{job="coffre-node"})', "node request latencies recorded"),
        ('sum(coffre_store_operations_total{operation="put",result="ok"})', "shards stored, counted by nodes"),
        ('sum(coffre_store_bytes_total{direction="in"})', "shard bytes written, counted by nodes"),
        ('sum(coffre_shard_requests_total{operation="put",result="ok"})', "shard writes counted by the coordinator"),
        ('sum(coffre_shard_requests_total{operation="get",result="ok"})', "shard reads counted by the coordinator"),
        ('sum(coffre_metadata_request_duration_seconds_count)', "metadata requests timed"),
        ('max(coffre_leader)', "a coordinator leads"),
        ('min(coffre_certificate_expiry_timestamp_seconds) - time()', "certificate expiry in the future"),
        ('sum(coffre_store_used_bytes)', "nodes report used bytes"),
        ('count(coffre_country_state == 1)', "country states published"),
    ]:
        found, _ = wait_for(what, 15, lambda: (value(expression) or 0) > 0)
        if found:
            print(f"ok   {what}: {value(expression):g}", flush=True)

    # Every query of the Grafana dashboard is valid PromQL that Prometheus evaluates.
    dashboard = json.load(open(os.path.join(ROOT, "Helm", "coffre", "files", "coffre-dashboard.json")))
    expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    bad = []
    for expression in expressions:
        status, body = get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": expression.replace("$__rate_interval", "1m")}))
        if status != 200 or json.loads(body).get("status") != "success":
            bad.append((expression, status, body[:200]))
    check(not bad, f"all {len(expressions)} dashboard queries evaluate: {bad}")

    pids = json.load(open(os.path.join(args.cluster, "pids.json")))["processes"]
    victim = args.kill
    node = victim.split(" ")[1]
    address = next(g["targets"][0] for g in daemons if g["labels"]["process"] == victim)
    check(value(f'max(coffre_node_up{{node="{node}"}})') == 1, f"{node} up before the kill")
    os.kill(pids[victim], signal.SIGKILL)
    print(f"killed {victim} (pid {pids[victim]}, SIGKILL)", flush=True)

    def firing(name, **labels):
        def probe():
            status, body = get(base + "/api/v1/alerts")
            if status != 200:
                return False
            for alert in json.loads(body)["data"]["alerts"]:
                if alert["labels"].get("alertname") == name and alert["state"] == "firing" and all(
                        alert["labels"].get(k) == v for k, v in labels.items()):
                    return alert
            return False
        return probe
    alert, seconds = wait_for("CoffreNodeDown firing", 90, firing("CoffreNodeDown", node=node))
    if alert:
        check(True, f"CoffreNodeDown fired for {node} {seconds:.1f} s after the kill: {alert['annotations']['summary']}")
        expected = {"alertname": "CoffreNodeDown", "node": node, "country": "IS", "region": "is-reykjavik", "severity": "warning"}
        check(alert["labels"] == expected, f"CoffreNodeDown's labels are the node's own: {alert['labels']}")
    alert, seconds = wait_for("CoffreDaemonUnreachable firing", 60, firing("CoffreDaemonUnreachable", instance=address))
    if alert:
        check(True, f"CoffreDaemonUnreachable fired for {address} {seconds:.1f} s after the kill")
    # No alert fires for what is well.
    status, body = get(base + "/api/v1/alerts")
    names = sorted({a["labels"]["alertname"] for a in json.loads(body)["data"]["alerts"] if a["state"] == "firing"})
    check(set(names) <= {"CoffreNodeDown", "CoffreDaemonUnreachable"}, f"only the expected alerts fire: {names}")


if __name__ == "__main__":
    sys.exit(main())
