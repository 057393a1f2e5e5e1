"""docs/: the walk a new user takes on kind (tests/kind/walk_docs.py runs the marked shell blocks
of docs/install.md and docs/first-policy.md in the kind workflow) — here, on every CI run, the
walker itself, the steps it would run, and the in-cluster example those steps apply."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from chartlib import REPO, load_yaml_docs
from test_gitops import gateway_binary

DOCS = [REPO / "docs" / "install.md", REPO / "docs" / "first-policy.md"]
EXAMPLE = REPO / "examples" / "first-policy"

_spec = importlib.util.spec_from_file_location("walk_docs", REPO / "tests" / "kind" / "walk_docs.py")
walk = importlib.util.module_from_spec(_spec)
sys.modules["walk_docs"] = walk
_spec.loader.exec_module(walk)


def run_walk(tmp_path: Path, markdown: str) -> subprocess.CompletedProcess:
    doc = tmp_path / "doc.md"
    doc.write_text(textwrap.dedent(markdown))
    return subprocess.run([sys.executable, str(REPO / "tests" / "kind" / "walk_docs.py"), str(doc)],
                          capture_output=True, text=True, timeout=60)


def test_the_kind_walk_builds_installs_applies_and_talks_mcp():
    blocks = [b for d in DOCS for b in walk.blocks(d)]
    code = "\n".join(b.code for b in blocks)
    steps = [
        "docker build -f images/operator.Dockerfile",
        "docker build -f images/gateway.Dockerfile",
        "kind create cluster --name gatehouse",
        "kind load docker-image --name gatehouse gatehouse/gatehouse-operator:0.1.0 gatehouse/gatehouse-gateway:0.1.0",
        "helm install gatehouse charts/gatehouse -n gatehouse-system",
        "helm test gatehouse",
        "docker build -f images/demo-server.Dockerfile",
        "kind load docker-image --name gatehouse gatehouse/gatehouse-demo-server:0.1.0",
        "kubectl apply -f examples/first-policy/",
        "kubectl -n demo wait --for=condition=Ready mcpgateway/mcp",
        "port-forward service/mcp 8080:80",
        '"name":"whoami"',
    ]
    positions = [code.find(s) for s in steps]
    assert all(p >= 0 for p in positions), [s for s, p in zip(steps, positions) if p < 0]
    assert positions == sorted(positions), "steps out of order"
    expects = [b.expect for b in blocks if b.expect]
    assert "Bearer first-policy-upstream-token" in expects  # the credential reached the server
    assert "no AccessPolicy allows user" in expects  # and the policy denied what it should
    script = walk.script(blocks, "/tmp/logs")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    # The tags the docs build are the ones the chart and the example use.
    chart = yaml.safe_load((REPO / "charts" / "gatehouse" / "Chart.yaml").read_text())
    assert f"gatehouse-gateway:{chart['appVersion']}" in code
    images = [c["image"] for d in load_yaml_docs((EXAMPLE / "01-server.yaml").read_text())
              if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]]
    assert images == [f"gatehouse/gatehouse-demo-server:{chart['appVersion']}"]


def test_walk_runs_blocks_in_one_shell_and_checks_expectations(tmp_path):
    ok = run_walk(tmp_path, """\
        Set something:

        <!-- walk -->
        ```sh
        GREETING=hello
        greet() { echo "$GREETING, $1"; }
        ```

        Not walked:

        ```sh
        exit 3
        ```

        <!-- walk expect="hello, walker" -->
        ```sh
        greet walker
        ```
        """)
    assert ok.returncode == 0, ok.stderr
    assert "hello, walker" in ok.stdout
    assert "walk: every step worked" in ok.stderr


def test_walk_fails_on_a_missing_expectation(tmp_path):
    p = run_walk(tmp_path, """\
        <!-- walk expect="Bearer secret-token" -->
        ```sh
        echo '{"error":"denied"}'
        ```
        """)
    assert p.returncode != 0
    assert "did not print 'Bearer secret-token'" in p.stderr


def test_walk_stops_at_the_first_failing_command_even_in_a_checked_block(tmp_path):
    p = run_walk(tmp_path, """\
        <!-- walk expect="done" -->
        ```sh
        echo starting
        false
        echo done
        ```
        """)
    assert p.returncode != 0
    assert "starting" in p.stdout  # the failing block's output is shown
    assert "every step worked" not in p.stderr


def test_walk_refuses_a_marker_without_a_shell_block(tmp_path):
    p = run_walk(tmp_path, """\
        <!-- walk -->
        ```yaml
        a: 1
        ```
        """)
    assert p.returncode != 0
    assert "must be followed by a ```sh block" in p.stderr + p.stdout


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(gateway_binary()), "check", "--manifests", str(EXAMPLE), *args],
                          capture_output=True, text=True, timeout=60)


def test_first_policy_example_compiles_cleanly():
    p = check()
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ok: every object compiles cleanly" in p.stdout


@pytest.mark.parametrize("user,tool,code", [
    ("alice", "whoami", 0),
    ("alice", "admin_reset", 1),
    ("bob", "whoami", 1),
])
def test_first_policy_example_answers_as_the_guide_says(user, tool, code):
    p = check("--user", user, "--server", "demo", "--namespace", "demo", "--tool", tool)
    assert p.returncode == code, p.stdout + p.stderr


def test_the_policy_shown_in_the_guide_is_the_one_applied():
    text = (REPO / "docs" / "first-policy.md").read_text()
    shown = text.split("# examples/first-policy/03-policy.yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(shown) == yaml.safe_load((EXAMPLE / "03-policy.yaml").read_text())


def test_first_policy_example_applies_to_an_api_server_in_file_order(kube):
    kube.kubectl("apply", "--server-side", "-f", str(REPO / "charts" / "gatehouse" / "crds"))
    kube.kubectl("wait", "--for", "condition=established", "crd", "--all", "--timeout=20s")
    p = kube.kubectl("apply", "-f", str(EXAMPLE))  # the Namespace comes first (01-…)
    for obj in ["namespace/demo", "deployment.apps/demo-mcp", "service/demo-mcp", "mcpserver.gatehouse.dev/demo",
                "mcpgateway.gatehouse.dev/mcp", "accesspolicy.gatehouse.dev/alice-demo"]:
        assert obj in p.stdout, p.stdout
