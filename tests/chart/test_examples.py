"""The example manifests mean what their comments say: `gatehouse-gateway check` answers the
questions a reader of each example would ask."""

from __future__ import annotations

import subprocess

import pytest

from chartlib import REPO
from test_gitops import gateway_binary

SIDECAR = REPO / "examples" / "in-cluster-sidecar" / "all.yaml"
ANALYTICS_AGENT = ["--agent", "analytics/reporter", "--agent-kind", "service-account"]


def check(manifests, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(gateway_binary()), "check", "--manifests", str(manifests), *args],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("question,code", [
    # Tools without a `sql` argument are not caught by the condition on it.
    (["--tool", "list_tables"], 0),
    (["--tool", "describe_table", "--arguments", '{"table": "orders"}'], 0),
    (["--tool", "query", "--arguments", '{"sql": "select count(*) from orders"}'], 0),
    (["--tool", "query", "--arguments", '{"sql": "DROP table orders"}'], 1),
    # Not in the policy's tool list.
    (["--tool", "insert_rows"], 1),
])
def test_sidecar_example_lets_analytics_agents_read_but_not_drop(question, code):
    p = check(SIDECAR, *ANALYTICS_AGENT, "--server", "tools/postgres-mcp", *question)
    assert p.returncode == code, p.stdout + p.stderr
    if code == 0:
        assert "AccessPolicy tools/analytics-agents-read-only" in p.stdout, p.stdout


def test_sidecar_example_grants_nothing_to_other_service_accounts():
    p = check(SIDECAR, "--agent", "web/frontend", "--agent-kind", "service-account",
              "--server", "postgres-mcp", "--tool", "list_tables")
    assert p.returncode == 1, p.stdout + p.stderr


def test_server_may_be_named_with_its_namespace():
    p = check(SIDECAR, *ANALYTICS_AGENT, "--server", "other/postgres-mcp", "--tool", "list_tables")
    assert p.returncode == 2, p.stdout + p.stderr
    assert 'no served McpServer named "other/postgres-mcp"' in p.stdout, p.stdout
