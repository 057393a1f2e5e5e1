"""The operator scenarios with real gateway pods, on a real cluster.

Runs after `tests/kind/walk_docs.py docs/install.md docs/first-policy.md` has installed the chart
and `examples/first-policy/` into the cluster KUBECONFIG points at (the kind workflow does both),
and only when GATEHOUSE_KIND_E2E=1 says so: it changes that cluster. Elsewhere every test is
skipped with the reason printed (`pytest -rs`).

What it proves, through a `kubectl port-forward` to the gateway Service (as a user would):
- a policy change applied with kubectl is enforced by the running gateway pods (the
  apply-to-enforced time is printed, not asserted);
- a manifest the operator cannot compile shows up in status while traffic keeps flowing;
- with every operator pod deleted, the gateways keep serving, and once the operator is back a
  policy change is enforced again;
- a rotated Secret reaches the upstream without a gateway restart;
- with two replicas, status lists both replicas' applied version.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NS = "demo"
OPERATOR_NS = "gatehouse-system"
ALICE = "alice-quickstart-key"
BOB = "bob-quickstart-key"

pytestmark = pytest.mark.skipif(
    os.environ.get("GATEHOUSE_KIND_E2E") != "1" or shutil.which("kubectl") is None,
    reason="SKIPPED: real-cluster gateway-pod suite; set GATEHOUSE_KIND_E2E=1 with KUBECONFIG at a "
    "throwaway cluster prepared by tests/kind/walk_docs.py (see .github/workflows/kind-e2e.yml)",
)


def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    p = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {p.stderr}")
    return p.stdout


def apply(manifest: str) -> None:
    kubectl("apply", "-f", "-", input=manifest)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mcp:
    """A minimal MCP client over Streamable HTTP (JSON or SSE answers)."""

    def __init__(self, base: str, key: str):
        self.url, self.key, self.session = f"{base}/mcp/demo", key, None

    def post(self, message: dict) -> tuple[int, dict | None]:
        headers = {
            "X-API-Key": self.key,
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-06-18",
        }
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        req = urllib.request.Request(self.url, json.dumps(message).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, body, sid = r.status, r.read().decode(), r.headers.get("Mcp-Session-Id")
        except urllib.error.HTTPError as e:
            status, body, sid = e.code, e.read().decode(), None
        if sid:
            self.session = sid
        for line in body.splitlines():  # SSE: the last `data:` line carrying a JSON-RPC message
            if line.startswith("data:") and line[5:].strip().startswith("{"):
                body = line[5:].strip()
        return status, (json.loads(body) if body.strip().startswith("{") else None)

    def start(self) -> None:
        status, _ = self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "kind-suite", "version": "1"}}})
        assert status == 200 and self.session, f"initialize answered {status}"
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, tool: str) -> dict:
        _, msg = self.post({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                            "params": {"name": tool, "arguments": {}}})
        return msg or {}


def upstream_authorization(client: Mcp) -> str | None:
    """What `whoami` says the MCP server received as Authorization, or None when refused."""
    msg = client.call("whoami")
    if "result" not in msg:
        return None
    return json.loads(msg["result"]["content"][0]["text"])["authorization"]


@pytest.fixture(scope="module")
def gateway():
    kubectl("-n", NS, "wait", "--for=condition=Ready", "mcpgateway/mcp", "--timeout=300s")
    port = free_port()
    pf = subprocess.Popen(["kubectl", "-n", NS, "port-forward", "service/mcp", f"{port}:80"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "Forwarding from" in (pf.stdout.readline() if pf.stdout else "")
        yield f"http://127.0.0.1:{port}"
    finally:
        pf.kill()


def wait_for(what: str, predicate, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def condition(kind: str, name: str, type_: str) -> dict:
    obj = json.loads(kubectl("-n", NS, "get", kind, name, "-o", "json"))
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return {}


def gateway_pods() -> dict[str, int]:
    pods = json.loads(kubectl("-n", NS, "get", "pods", "-l", "app.kubernetes.io/instance=mcp,app.kubernetes.io/component=gateway", "-o", "json"))
    return {p["metadata"]["uid"]: sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses", []))
            for p in pods["items"]}


def bob_policy(name: str = "bob-demo") -> str:
    return f"""
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: {name}, namespace: {NS}}}
spec:
  subjects:
    - users: {{ids: [bob]}}
  targets:
    - server: demo
      credentialProvider: demo-token
      tools: {{allow: [whoami]}}
"""


def test_policy_change_is_enforced_by_the_gateway_pods(gateway):
    kubectl("-n", NS, "delete", "accesspolicy", "bob-demo", "--ignore-not-found")
    bob = Mcp(gateway, BOB)
    wait_for("bob to be refused", lambda: (bob.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})[0] != 200
        or upstream_authorization(bob) is None))
    applied = time.monotonic()
    apply(bob_policy())

    def bob_allowed():
        b = Mcp(gateway, BOB)
        status, _ = b.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        return status == 200 and b.session and upstream_authorization(b) == "Bearer first-policy-upstream-token"

    try:
        wait_for("bob's new policy to be enforced", bob_allowed)
        print(f"\napply-to-enforced through a gateway pod: {time.monotonic() - applied:.2f} s (kubectl apply included)")
        wait_for("bob-demo Ready", lambda: condition("accesspolicy", "bob-demo", "Ready").get("status") == "True")
    finally:
        kubectl("-n", NS, "delete", "accesspolicy", "bob-demo", "--ignore-not-found")


def test_broken_manifest_shows_in_status_while_traffic_flows(gateway):
    alice = Mcp(gateway, ALICE)
    alice.start()
    apply(f"""
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: broken, namespace: {NS}}}
spec:
  subjects:
    - users: {{ids: [alice]}}
  targets:
    - server: demo
      credentialProvider: does-not-exist
""")
    try:
        c = wait_for("broken policy to report ResolvedRefs=False",
                     lambda: (c := condition("accesspolicy", "broken", "ResolvedRefs")).get("status") == "False" and c)
        assert "does-not-exist" in c["message"], c
        assert upstream_authorization(alice) == "Bearer first-policy-upstream-token"
    finally:
        kubectl("-n", NS, "delete", "accesspolicy", "broken", "--ignore-not-found")


def test_gateways_keep_serving_while_the_operator_is_down(gateway):
    alice = Mcp(gateway, ALICE)
    alice.start()
    kubectl("-n", OPERATOR_NS, "scale", "deployment/gatehouse-operator", "--replicas=0")
    try:
        kubectl("-n", OPERATOR_NS, "wait", "--for=delete", "pod", "-l", "app.kubernetes.io/instance=gatehouse,app.kubernetes.io/component=operator",
                "--timeout=120s", check=False)
        for _ in range(20):
            assert upstream_authorization(alice) == "Bearer first-policy-upstream-token"
            time.sleep(0.25)
    finally:
        kubectl("-n", OPERATOR_NS, "scale", "deployment/gatehouse-operator", "--replicas=2")
    kubectl("-n", OPERATOR_NS, "rollout", "status", "deployment/gatehouse-operator", "--timeout=180s")

    def bob_allowed():
        b = Mcp(gateway, BOB)
        b.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        return bool(b.session) and upstream_authorization(b) == "Bearer first-policy-upstream-token"

    # bob has no policy (the first test removed its own): refused until the new one arrives.
    wait_for("bob to be refused", lambda: not bob_allowed())
    apply(bob_policy("bob-after-restart"))
    try:
        wait_for("a policy applied after the restart to be enforced", bob_allowed, timeout=120)
    finally:
        kubectl("-n", NS, "delete", "accesspolicy", "bob-after-restart", "--ignore-not-found")


def test_secret_rotation_reaches_the_upstream_without_a_restart(gateway):
    before = gateway_pods()
    alice = Mcp(gateway, ALICE)
    alice.start()
    rotated = "rotated-" + base64.b32encode(os.urandom(5)).decode().lower()
    apply(kubectl("-n", NS, "create", "secret", "generic", "demo-upstream-token",
                  f"--from-literal=token={rotated}", "--dry-run=client", "-o", "yaml"))
    try:
        wait_for("the rotated token upstream", lambda: upstream_authorization(alice) == f"Bearer {rotated}")
        assert gateway_pods() == before, "gateway pods were restarted or replaced"
    finally:
        apply(kubectl("-n", NS, "create", "secret", "generic", "demo-upstream-token",
                      "--from-literal=token=first-policy-upstream-token", "--dry-run=client", "-o", "yaml"))


def test_two_replicas_report_their_applied_version(gateway):
    kubectl("-n", NS, "patch", "mcpgateway", "mcp", "--type=merge", "-p", '{"spec":{"replicas":2}}')
    try:
        def both_applied():
            st = json.loads(kubectl("-n", NS, "get", "mcpgateway", "mcp", "-o", "json")).get("status", {})
            applied = st.get("replicasApplied", [])
            return len(applied) == 2 and all(r["version"] == st.get("configVersion") for r in applied) and st
        st = wait_for("two replicas to apply the current version", both_applied, timeout=180)
        print(f"\nreplicasApplied: {st['replicasApplied']}")
    finally:
        kubectl("-n", NS, "patch", "mcpgateway", "mcp", "--type=merge", "-p", '{"spec":{"replicas":1}}')
