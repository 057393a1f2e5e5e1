"""The Argo CD health checks (Lua) for the five Gatehouse kinds, run in a real Lua 5.1 (Argo CD
runs gopher-lua, a Lua 5.1) against sample objects, from the shipped argocd-cm snippet."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from lupa import lua51

from chartlib import REPO

ARGOCD = REPO / "examples" / "gitops" / "argocd"
KINDS = ["McpGateway", "McpServer", "AccessPolicy", "TrustProvider", "CredentialProvider"]


def shipped_scripts() -> dict[str, str]:
    return yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())["data"]


def health(kind: str, obj: dict, group: str = "gatehouse.dev") -> dict:
    script = shipped_scripts()[f"resource.customizations.health.{group}_{kind}"]
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(script)
    assert hs is not None, "the script returned nothing"
    return {"status": hs["status"], "message": hs["message"]}


def cond(type_: str, status: str, reason: str, message: str = "", generation: int | None = 2) -> dict:
    c = {"type": type_, "status": status, "reason": reason, "message": message,
         "lastTransitionTime": "2025-01-01T00:00:00Z"}
    if generation is not None:
        c["observedGeneration"] = generation
    return c


def mk(kind: str, generation: int = 2, conditions: list | None = None, **status) -> dict:
    obj = {
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "team-a", "generation": generation},
        "spec": {"replicas": 2} if kind == "McpGateway" else {},
    }
    if conditions is not None or status:
        obj["status"] = dict(status)
        if conditions is not None:
            obj["status"]["conditions"] = conditions
    return obj


def all_true(generation: int = 2) -> list:
    return [
        cond("Accepted", "True", "Accepted", generation=generation),
        cond("ResolvedRefs", "True", "ResolvedRefs", generation=generation),
        cond("Programmed", "True", "Programmed", "2/2 replicas applied", generation=generation),
        cond("Ready", "True", "Ready", "in force on team-a/mcp", generation=generation),
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_ready_is_healthy(kind):
    hs = health(kind, mk(kind, conditions=all_true(), observedGeneration=2))
    assert hs["status"] == "Healthy", hs
    assert hs["message"].startswith("Ready")


@pytest.mark.parametrize("kind", KINDS)
def test_no_status_yet_is_progressing(kind):
    for obj in (mk(kind), mk(kind, conditions=[]), mk(kind, observedGeneration=2)):
        hs = health(kind, obj)
        assert hs == {"status": "Progressing", "message": "Waiting for the Gatehouse operator to report status"}


@pytest.mark.parametrize("kind", KINDS)
def test_pending_programming_is_progressing(kind):
    conditions = all_true()[:2] + [
        cond("Programmed", "False", "Pending", "1/2 replicas applied version abc"),
        cond("Ready", "False", "NotProgrammed", "waiting for gateways"),
    ]
    hs = health(kind, mk(kind, conditions=conditions, observedGeneration=2))
    assert hs["status"] == "Progressing", hs
    assert "Programmed (Pending): 1/2 replicas applied version abc" in hs["message"]
    # Ready still Unknown, no Programmed condition at all: still progressing.
    hs = health(kind, mk(kind, conditions=all_true()[:2] + [cond("Ready", "Unknown", "Reconciling")]))
    assert hs["status"] == "Progressing" and "Ready (Reconciling)" in hs["message"], hs


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("failed,reason", [
    ("Accepted", "Invalid"),
    ("ResolvedRefs", "RefNotPermitted"),
    ("ResolvedRefs", "SecretNotFound"),
])
def test_refused_spec_or_unresolved_refs_are_degraded(kind, failed, reason):
    conditions = [
        cond(c["type"], "False", reason, f"{kind} team-a/x: it went wrong") if c["type"] == failed else c
        for c in all_true()
    ]
    conditions[-1] = cond("Ready", "False", reason)
    hs = health(kind, mk(kind, conditions=conditions, observedGeneration=2))
    assert hs["status"] == "Degraded", hs
    assert hs["message"] == f"{failed}=False ({reason}): {kind} team-a/x: it went wrong"


@pytest.mark.parametrize("kind", KINDS)
def test_a_rejected_configuration_is_degraded(kind):
    conditions = all_true()[:2] + [
        cond("Programmed", "False", "Rejected", "gateway mcp-0 rejected version abc: bad CEL"),
        cond("Ready", "False", "NotProgrammed"),
    ]
    hs = health(kind, mk(kind, conditions=conditions, observedGeneration=2))
    assert hs["status"] == "Degraded", hs
    assert "bad CEL" in hs["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_stale_status_is_progressing_whatever_it_says(kind):
    # The spec changed (generation 3) and the operator has not caught up: neither the old Ready
    # nor an old failure describes the current spec.
    stale_ready = mk(kind, generation=3, conditions=all_true(generation=2), observedGeneration=2)
    hs = health(kind, stale_ready)
    assert hs["status"] == "Progressing", hs
    assert "generation 3" in hs["message"] and "generation 2" in hs["message"]

    stale_failure = [cond("Accepted", "False", "Invalid", "old problem", generation=2)] + all_true(2)[1:]
    hs = health(kind, mk(kind, generation=3, conditions=stale_failure, observedGeneration=2))
    assert hs["status"] == "Progressing", hs

    # Only the conditions carry observedGeneration.
    hs = health(kind, mk(kind, generation=3, conditions=all_true(generation=2)))
    assert hs["status"] == "Progressing" and "Accepted is for generation 2" in hs["message"], hs

    # Caught up again: healthy.
    hs = health(kind, mk(kind, generation=3, conditions=all_true(generation=3), observedGeneration=3))
    assert hs["status"] == "Healthy", hs


def test_gateway_and_server_messages_say_what_users_need():
    hs = health("McpGateway", mk("McpGateway", conditions=all_true(), observedGeneration=2,
                                 readyReplicas=2, configVersion="0123456789abcdef0123"))
    assert hs == {"status": "Healthy", "message": "Ready: 2/2 replicas, config 0123456789ab"}
    hs = health("McpServer", mk("McpServer", conditions=all_true(), observedGeneration=2,
                                url="https://mcp.example.com/mcp/github"))
    assert hs == {"status": "Healthy", "message": "Ready: agents use https://mcp.example.com/mcp/github"}
    hs = health("TrustProvider", mk("TrustProvider", conditions=all_true(), type="oidc"))
    assert hs["message"] == "Ready (oidc)"


def test_application_health_for_sync_waves_across_applications():
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "a"}}
    assert health("Application", app, group="argoproj.io")["status"] == "Progressing"
    app["status"] = {"health": {"status": "Degraded", "message": "boom"}}
    assert health("Application", app, group="argoproj.io") == {"status": "Degraded", "message": "boom"}


# === the snippet is generated from the .lua files ===


def test_argocd_cm_snippet_is_generated_from_the_lua_files():
    p = subprocess.run([sys.executable, str(ARGOCD / "gen_argocd_cm.py"), "--check"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    data = shipped_scripts()
    common = (ARGOCD / "health" / "_common.lua").read_text()
    core = common[common.index("-- BEGIN common"):]
    for f in (ARGOCD / "health").glob("*.lua"):
        if f.name.startswith("_"):
            continue
        script = data[f"resource.customizations.health.{f.stem}"]
        assert script.startswith(f.read_text().rstrip("\n")), f
        assert script.endswith(core) == f.stem.startswith("gatehouse.dev_"), f
    assert {f"resource.customizations.health.gatehouse.dev_{k}" for k in KINDS} <= set(data)


def test_every_gatehouse_script_shares_the_same_core():
    data = shipped_scripts()

    def core(kind):
        m = re.search(r"-- BEGIN common.*?-- END common\n", data[f"resource.customizations.health.gatehouse.dev_{kind}"], re.S)
        assert m, kind
        return m.group(0)
    assert len({core(k) for k in KINDS}) == 1
