#!/usr/bin/env python3
"""Checks Helm/coffre offline, as far as there is no Kubernetes API server here:

- `helm lint --strict` and `helm template` with the defaults and each example, and
  `kubernetes-validate --strict` (Kubernetes 1.33) on what they render;
- bad values refused with a message naming them (values.schema.json and the templates' checks);
- the rendered files are what the daemons accept: every coordinator's and storage node's
  configuration, with the chart-generated certificates and the admin-token secret written where
  their pods mount them, passes `coffred ... --check-config` (which also checks that each
  certificate names its daemon);
- least privilege: no pod mounts a CA's key; storage nodes hold no etcd credential or admin
  token; every container runs as non-root on a read-only root file system with probes;
- the `helm test` script is valid shell.

Usage: helm_chart.py COFFRED [--helm PATH]
"""
import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "Helm", "coffre")
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def run(arguments, **kwargs):
    return subprocess.run(arguments, capture_output=True, text=True, **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("coffred")
    parser.add_argument("--helm", default=shutil.which("helm") or "helm")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="coffre-helm-")
    env = dict(os.environ, HELM_CACHE_HOME=home + "/cache", HELM_CONFIG_HOME=home + "/config", HELM_DATA_HOME=home + "/data")

    def helm(*arguments):
        return run([args.helm, *arguments], env=env)

    examples = [None] + sorted(os.path.join(CHART, "examples", f) for f in os.listdir(os.path.join(CHART, "examples")))
    for values in examples:
        name = os.path.basename(values) if values else "defaults"
        extra = ["-f", values] if values else []
        lint = helm("lint", "--strict", CHART, *extra)
        check(lint.returncode == 0, f"{name}: helm lint --strict" + ("" if lint.returncode == 0 else f"\n{lint.stdout[-800:]}{lint.stderr[-800:]}"))
        rendered = helm("template", "coffre", CHART, "--namespace", "coffre", *extra)
        check(rendered.returncode == 0, f"{name}: helm template {rendered.stderr[-800:]}")
        path = os.path.join(home, name + ".rendered.yaml")
        open(path, "w").write(rendered.stdout)
        validate = run(["kubernetes-validate", "--strict", "-k", "1.33.0", "--quiet", path])
        # Resources of cert-manager and the Prometheus Operator have no schema there: a warning.
        errors = [line for line in (validate.stdout + validate.stderr).splitlines() if line.startswith("ERROR")]
        check(validate.returncode == 0 and not errors, f"{name}: kubernetes-validate --strict 1.33 {errors[:5]}")
        documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        check_least_privilege(name, documents)
        check_test_script(name, documents, home)
        if not any(d["kind"] == "Certificate" for d in documents):
            check_configurations(name, documents, args.coffred, home)
        else:
            check_cert_manager(name, documents)

    check_transparency_key(helm, home)
    bad_values(helm, home)
    chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
    version = re.search(r'current = "([^"]+)"', open(os.path.join(ROOT, "Sources", "CoffreModel", "CoffreVersion.swift")).read()).group(1)
    check(chart["appVersion"] == version, f"the chart's appVersion {chart['appVersion']} is coffred's version {version}")
    if failures:
        print(f"{len(failures)} checks failed")
        return 1
    print("every check passed")
    return 0


def check_transparency_key(helm, home):
    """The log's signing key: generated into the admin Secret and named by every coordinator's
    configuration; with an admin Secret of the operator's, only when it says it holds one."""
    def render(*extra):
        rendered = helm("template", "coffre", CHART, "--namespace", "coffre", *extra)
        return [d for d in yaml.safe_load_all(rendered.stdout) if d]

    def configurations(documents):
        return [text for d in documents if d["kind"] == "ConfigMap" for key, text in d.get("data", {}).items() if "admin_token_file" in text]

    documents = render()
    secret = next(d for d in documents if d["kind"] == "Secret" and d["metadata"]["name"] == "coffre-admin-token")
    seed = base64.urlsafe_b64decode(base64.b64decode(secret["data"]["transparency-key"]).decode() + "=")
    check(len(seed) == 32, f"the generated transparency key is a 32-byte seed ({len(seed)} bytes)")
    check(configurations(documents) and all("transparency_key_file: /etc/coffre/admin/transparency-key" in c for c in configurations(documents)),
          "every coordinator's configuration names the transparency key file")
    own = render("--set", "coordinator.adminTokenSecret=mine")
    check(configurations(own) and not any("transparency_key_file" in c for c in configurations(own)),
          "with the operator's admin Secret and no transparencyKeyInSecret, the key is derived from the token")
    both = render("--set", "coordinator.adminTokenSecret=mine", "--set", "coordinator.transparencyKeyInSecret=true")
    check(all("transparency_key_file" in c for c in configurations(both)), "transparencyKeyInSecret names the key file in the operator's Secret")


def pods(documents):
    """(name, pod spec) of every workload."""
    for d in documents:
        if d["kind"] in ("StatefulSet", "Deployment"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"], d["spec"]["template"]["metadata"]["labels"]
        elif d["kind"] == "Pod":
            yield d["metadata"]["name"], d["spec"], d["metadata"]["labels"]


def secrets_of(spec):
    names = set()
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                names.add(source["secret"]["name"])
    return names


def check_least_privilege(name, documents):
    for pod, spec, labels in pods(documents):
        component = labels.get("app.kubernetes.io/component")
        mounted = secrets_of(spec)
        check(not any(s.endswith("-cluster-ca") or s.endswith("-etcd-ca") for s in mounted), f"{name}: {pod} mounts no CA key ({sorted(mounted)})")
        if component == "storage-node":
            check(not any("etcd" in s or "admin" in s for s in mounted), f"{name}: storage node {pod} holds no etcd credential or admin token")
        if component == "test":
            items = [v["secret"].get("items") for v in spec["volumes"] if "secret" in v]
            check(items == [[{"key": "ca.crt", "path": "ca.crt"}]], f"{name}: the test pod mounts the CA certificate only")
        check(spec["securityContext"].get("runAsNonRoot") is True, f"{name}: {pod} runs as non-root")
        check(spec.get("automountServiceAccountToken") is False, f"{name}: {pod} holds no service-account token")
        for container in spec["containers"]:
            context = container.get("securityContext", {})
            check(context.get("readOnlyRootFilesystem") is True and context.get("allowPrivilegeEscalation") is False
                  and context.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: {pod}/{container['name']} read-only, no privilege")
            if component != "test":
                check(all(p in container for p in ("startupProbe", "livenessProbe", "readinessProbe")) and "resources" in container,
                      f"{name}: {pod}/{container['name']} has probes and resources")
    kinds = {d["kind"] for d in documents}
    check("PodDisruptionBudget" in kinds, f"{name}: disruption budgets")


def check_test_script(name, documents, home):
    config = next((d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-test")), None)
    if not config:
        return
    script = os.path.join(home, name + ".test.sh")
    open(script, "w").write(config["data"]["test.sh"])
    check(run(["sh", "-n", script]).returncode == 0, f"{name}: the helm test script is valid shell")


def write_mounts(spec, documents, root, pod_name):
    """Writes what a pod mounts (config maps and secrets) under `root`, as the pod sees it."""
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    container = spec["containers"][0]
    for mount in container.get("volumeMounts", []):
        target = root + mount["mountPath"]
        os.makedirs(target, exist_ok=True)
        volume = next((v for v in spec["volumes"] if v["name"] == mount["name"]), None)
        if volume is None:  # a volume claim: an empty folder
            continue
        if "configMap" in volume:
            for key, value in by_name[("ConfigMap", volume["configMap"]["name"])]["data"].items():
                open(os.path.join(target, key), "w").write(value.replace("/etc/coffre", root + "/etc/coffre"))
        sources = []
        if "secret" in volume:
            sources = [(volume["secret"]["secretName"], volume["secret"].get("items"))]
        for source in volume.get("projected", {}).get("sources", []):
            sources.append((source["secret"]["name"], source["secret"].get("items")))
        for secret, items in sources:
            data = by_name[("Secret", secret)]["data"]
            for key, path in ([(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]):
                open(os.path.join(target, path), "wb").write(base64.b64decode(data[key]))


def check_configurations(name, documents, coffred, home):
    root = tempfile.mkdtemp(prefix="pod-", dir=home)
    checked = 0
    for workload, spec, labels in pods(documents):
        component = labels.get("app.kubernetes.io/component")
        if component not in ("storage-node", "coordinator"):
            continue
        replicas = next(d["spec"]["replicas"] for d in documents if d["metadata"]["name"] == workload and d["kind"] == "StatefulSet")
        for index in range(replicas):
            pod = f"{workload}-{index}"
            folder = os.path.join(root, pod)
            write_mounts(spec, documents, folder, pod)
            arguments = [a.replace("$(POD_NAME)", pod).replace("/etc/coffre", folder + "/etc/coffre") for a in spec["containers"][0]["args"]]
            result = run([coffred, arguments[0], "--check-config", *arguments[1:]])
            check(result.returncode == 0, f"{name}: {pod}: coffred {arguments[0]} --check-config accepts the rendered configuration"
                  + ("" if result.returncode == 0 else f": {result.stdout}{result.stderr}"))
            checked += 1
    check(checked >= 2, f"{name}: {checked} daemons' configurations checked")


def check_cert_manager(name, documents):
    certificates = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "Certificate"}
    for workload, spec, labels in pods(documents):
        component = labels.get("app.kubernetes.io/component")
        if component == "storage-node":
            node = labels["coffre.io/node"]
            check(certificates[workload]["uris"] == [f"coffre://node/{node}"], f"{name}: {workload}'s certificate names coffre://node/{node}")
    coordinators = [c for c in certificates.values() if any(u.startswith("coffre://coordinator/") for u in c.get("uris", []))]
    check(len(coordinators) >= 2, f"{name}: {len(coordinators)} coordinator certificates, each naming its pod")


def bad_values(helm, home):
    """Topologies the chart must refuse, and what it must say."""
    production = yaml.safe_load(open(os.path.join(CHART, "examples", "production-four-countries.yaml")))
    cases = []
    two_countries = dict(production, regions=[dict(r, storageNodes=5) for r in production["regions"][:2]])
    cases.append(("two countries for RS(6, 3)", two_countries, "needs 3 countries"))
    unknown = dict(production, regions=[dict(production["regions"][0], country="XX")] + production["regions"][1:])
    cases.append(("an unknown country code", unknown, "/regions/0/country"))
    small = dict(production, policy=dict(production["policy"], k=10, m=4))
    cases.append(("k + m above the storage nodes", small, "cannot hold the 14 shards"))
    etcd_two = dict(production, etcd=dict(production["etcd"], members=production["etcd"]["members"][:2]))
    cases.append(("two etcd members", etcd_two, "etcd needs 3 or 5"))
    etcd_same = dict(production, etcd=dict(production["etcd"], members=[{"country": "FR"}, {"country": "FR"}, {"country": "DE"}]))
    cases.append(("two etcd members in one country", etcd_same, "two members in FR"))
    bad_name = dict(production, regions=[dict(production["regions"][0], name="Paris")] + production["regions"][1:])
    cases.append(("a region name with capitals", bad_name, "/regions/0/name"))
    margin = dict(production, policy=dict(production["policy"], margin=3))
    cases.append(("a margin that leaves no shard per country", margin, "margin 3 leaves no shard"))
    for what, values, expected in cases:
        path = os.path.join(home, "bad.yaml")
        open(path, "w").write(yaml.safe_dump(values))
        result = helm("template", "coffre", CHART, "-f", path)
        check(result.returncode != 0 and expected in result.stderr, f"refused: {what} ({result.stderr.strip()[-300:]})")


if __name__ == "__main__":
    sys.exit(main())
