"""`helm install` through the real Helm library against the Kubernetes API double: the release's
objects exist afterwards (read back with kubectl), `helm test` runs its hook, `helm uninstall`
leaves the CRDs and users' resources in place."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

import helm_sdkpy
from chartlib import CHART, REPO, read_values, run, wait_for


@pytest.fixture(scope="module")
def release(install):
    return install(release="gh", namespace="gh-system")


def test_the_release_objects_exist_in_the_cluster(release, kube):
    ns = release.namespace
    for kind, name in [
        ("deployment", "gh-gatehouse-operator"),
        ("service", "gh-gatehouse-operator"),
        ("serviceaccount", "gh-gatehouse-operator"),
        ("role", "gh-gatehouse-operator-leader-election"),
        ("rolebinding", "gh-gatehouse-operator-leader-election"),
        ("poddisruptionbudget", "gh-gatehouse-operator"),
    ]:
        obj = kube.get_json("-n", ns, kind, name)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "gh"
        assert obj["metadata"]["annotations"]["meta.helm.sh/release-name"] == "gh"
    for kind in ("clusterrole", "clusterrolebinding"):
        kube.get_json(kind, "gh-gatehouse-operator")
    # What the server stored is what Helm rendered.
    served = kube.get_json("-n", ns, "deployment", "gh-gatehouse-operator")
    assert served["spec"]["template"]["spec"]["containers"][0]["args"] == (
        release.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    rules = kube.get_json("clusterrole", "gh-gatehouse-operator")["rules"]
    assert rules == release.one("ClusterRole")["rules"]


def test_the_crds_are_installed_from_the_chart(release, kube):
    for f in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(f.read_text())
        served = kube.get_json("crd", crd["metadata"]["name"])
        established = {c["type"]: c["status"] for c in served["status"]["conditions"]}
        assert established.get("Established") == "True"
        assert served["spec"]["versions"][0]["schema"] == crd["spec"]["versions"][0]["schema"]


def test_the_default_gateway_is_accepted_by_the_crd_schema(install, kube):
    rel = install(read_values(CHART / "ci" / "single-replica-values.yaml"), release="kind")
    gw = kube.get_json("-n", rel.namespace, "mcpgateway", "gatehouse")
    assert gw["spec"]["publicUrl"] == "http://localhost:8080"
    assert gw["spec"]["trustProviders"] == ["api-keys"]
    # Defaults from the CRD schema were applied by the server.
    assert gw["spec"]["allowedNamespaces"] == {"from": "Same"}


def _kubelet(kube, namespace: str, pod: str, phase: str, seen: list):
    """Play the kubelet for the test hook Pod: the double runs no containers."""
    def found():
        p = kube.kubectl("-n", namespace, "get", "pod", pod, "-o", "json", check=False)
        return p.returncode == 0 and json.loads(p.stdout)
    obj = wait_for(found, timeout=60)
    seen.append(obj)
    kube.kubectl(
        "-n", namespace, "patch", "pod", pod, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phase": phase}}),
    )


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_helm_test_runs_the_readiness_hook(phase, install, kube):
    rel = install(release=f"hooktest-{phase.lower()}", values={"operator": {"replicas": 1}})
    pod = f"{rel.name}-gatehouse-operator-test-ready"
    seen: list = []
    t = threading.Thread(target=_kubelet, args=(kube, rel.namespace, pod, phase, seen), daemon=True)
    t.start()
    if phase == "Succeeded":
        result = run(helm_sdkpy.ReleaseTest(rel.config).run(rel.name))
        assert result["name"] == rel.name
    else:
        with pytest.raises(helm_sdkpy.HelmError) as err:
            run(helm_sdkpy.ReleaseTest(rel.config).run(rel.name))
        assert pod in str(err.value) or "failed" in str(err.value).lower(), str(err.value)
    t.join(timeout=5)
    (created,) = seen
    assert created["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_uninstall_keeps_crds_and_users_resources(install, kube):
    rel = install(release="gone")
    ns = rel.namespace
    kube.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: users-policy
  namespace: {ns}
spec:
  subjects:
    - users: {{groups: [engineering]}}
  targets:
    - server: github
""")
    run(helm_sdkpy.Uninstall(rel.config).run(rel.name, wait=False, timeout=60))
    assert kube.kubectl("-n", ns, "get", "deployment", "gone-gatehouse-operator", check=False).returncode != 0
    assert kube.kubectl("get", "clusterrole", "gone-gatehouse-operator", check=False).returncode != 0
    # Helm never deletes what it installed from crds/, so users' resources survive an uninstall.
    kube.get_json("crd", "accesspolicies.gatehouse.dev")
    kube.get_json("-n", ns, "accesspolicy", "users-policy")


def _operator_binary() -> Path:
    """The operator binary, built first if needed (scripts/test builds it with the Rust tests)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "debug" / "gatehouse-operator"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--quiet", "-p", "gatehouse-operator"], cwd=REPO, check=True)
    return binary


# The real operator (issue 7), started with exactly the chart's arguments and environment (only
# the listen addresses moved to free local ports), against the double into which the chart was
# installed.
def test_the_operator_started_with_the_charts_arguments_reconciles_the_default_gateway(install, kube, workdir):
    rel = install(read_values(CHART / "ci" / "single-replica-values.yaml"), release="e2e")
    c = rel.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    args = [
        a.replace("0.0.0.0:8443", "127.0.0.1:0").replace("0.0.0.0:9090", "127.0.0.1:0")
        for a in c["args"]
    ]
    # The downward-API variables as the kubelet would set them, then the chart's literal ones.
    env = {"KUBECONFIG": str(kube.kubeconfig), "POD_NAME": "e2e-gatehouse-operator-0",
           "POD_NAMESPACE": rel.namespace, "PATH": "/usr/bin:/bin"}
    env.update({e["name"]: e["value"] for e in c["env"] if "value" in e})
    push_url = env["GATEHOUSE_PUSH_URL"]
    svc = f"e2e-gatehouse-operator.{rel.namespace}.svc"
    assert push_url == f"https://{svc}:8443"
    # The mounted push-tls Secret, as the kubelet would project it: the chart-generated files.
    secret = rel.one("Secret", "e2e-gatehouse-operator-push-tls")
    tls_dir = workdir / "e2e-push-tls"
    tls_dir.mkdir(exist_ok=True)
    for key, b64 in secret["data"].items():
        (tls_dir / key).write_bytes(base64.b64decode(b64))
    args = [a.replace("/etc/gatehouse/push-tls", str(tls_dir)) for a in args]
    log_path = workdir / "operator.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([str(_operator_binary()), *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # The push endpoint presents a certificate the chart's CA signed, for every Service name
        # a gateway may dial (Python's ssl verifies the chain and the name).
        def push_address():
            for line in log_path.read_text().splitlines():
                if line.startswith("{") and '"push"' in line:
                    return json.loads(line)["push"]
            return None
        host, port = wait_for(push_address, timeout=30).rsplit(":", 1)
        trust = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
        for name in ["e2e-gatehouse-operator", f"e2e-gatehouse-operator.{rel.namespace}", svc, f"{svc}.cluster.local"]:
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                with trust.wrap_socket(sock, server_hostname=name) as tls:
                    assert tls.version() in ("TLSv1.2", "TLSv1.3")
        # ... and nothing else: a client trusting only another CA refuses it.
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            with pytest.raises(ssl.SSLCertVerificationError):
                ssl.create_default_context().wrap_socket(sock, server_hostname=svc)

        def accepted():
            gw = kube.get_json("-n", rel.namespace, "mcpgateway", "gatehouse")
            conds = {x["type"]: x for x in (gw.get("status") or {}).get("conditions") or []}
            return conds if "Accepted" in conds else None
        conds = wait_for(accepted, timeout=60)
        assert conds["Accepted"]["status"] == "True", conds

        def gateway_deployment():
            items = kube.get_json("-n", rel.namespace, "deployments")["items"]
            return [d for d in items if d["metadata"]["name"] != "e2e-gatehouse-operator"]
        (dep,) = wait_for(gateway_deployment, timeout=60)
        (gw_container,) = dep["spec"]["template"]["spec"]["containers"]
        assert gw_container["image"] == "gatehouse/gatehouse-gateway:dev"  # the chart's --gateway-image
        gw_args = gw_container.get("args", [])
        assert push_url in gw_args
        # The gateway trusts the chart's CA, from a ConfigMap next to it.
        assert gw_args[gw_args.index("--operator-ca") + 1] == "/etc/gatehouse/operator-ca/ca.crt"
        ca_cm = wait_for(lambda: kube.kubectl(
            "get", "-n", rel.namespace, "configmap", "gatehouse-gatehouse-operator-ca", "-o", "json", check=False
        ).stdout)
        assert json.loads(ca_cm)["data"]["ca.crt"] == (tls_dir / "ca.crt").read_text()
        # Leader election happened in the release namespace (the chart's Role covers only that).
        leases = kube.get_json("-n", rel.namespace, "leases")["items"]
        assert leases and leases[0]["spec"]["holderIdentity"] == "e2e-gatehouse-operator-0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
