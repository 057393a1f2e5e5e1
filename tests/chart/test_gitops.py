"""examples/gitops: the sample policy repository compiles cleanly and answers what-if questions
(as a policy repo's CI would check it), applies to an API server with the CRDs, and the Argo CD
Applications are wired in the right order with values the chart accepts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from chartlib import REPO, load_yaml_docs

GITOPS = REPO / "examples" / "gitops"
POLICIES = GITOPS / "policies"
APPS = GITOPS / "argocd" / "apps"


def gateway_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "debug" / "gatehouse-gateway"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--locked", "-q", "-p", "gatehouse-gateway"], cwd=REPO, check=True)
    return binary


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(gateway_binary()), "check", "--manifests", str(POLICIES), *args],
        capture_output=True, text=True, timeout=60,
    )


def test_policy_repository_compiles_cleanly():
    p = check()
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ok: every object compiles cleanly" in p.stdout


@pytest.mark.parametrize("question,code,policy", [
    (["--user", "alice", "--email", "alice@example.com", "--group", "team-a", "--agent", "claude-code",
      "--server", "jira", "--namespace", "team-a", "--tool", "create_issue"], 0, "team-a/engineers"),
    (["--user", "alice", "--email", "alice@example.com", "--group", "team-a", "--agent", "claude-code",
      "--server", "jira", "--namespace", "team-a", "--tool", "delete_issue"], 1, "none (default deny)"),
    (["--user", "mallory", "--email", "mallory@elsewhere.test", "--group", "team-a", "--agent", "claude-code",
      "--server", "jira", "--namespace", "team-a", "--tool", "create_issue"], 1, "team-a/deny-external-accounts"),
    (["--user", "bob", "--email", "bob@example.com", "--server", "docs-search", "--namespace", "team-b",
      "--tool", "search"], 0, "team-b/everyone-searches"),
    (["--user", "bob", "--email", "bob@example.com", "--server", "docs-search", "--namespace", "team-b",
      "--tool", "reindex"], 1, "none (default deny)"),
])
def test_policy_repository_answers_what_if_questions(question, code, policy):
    p = check(*question)
    assert p.returncode == code, p.stdout + p.stderr
    assert policy in p.stdout, p.stdout


def test_policy_repository_applies_to_an_api_server(kube):
    kube.kubectl("apply", "--server-side", "-f", str(REPO / "charts" / "gatehouse" / "crds"))
    kube.kubectl("wait", "--for", "condition=established", "crd", "--all", "--timeout=20s")
    namespaces = sorted({d["metadata"].get("namespace") for f in POLICIES.rglob("*.yaml")
                         for d in load_yaml_docs(f.read_text())} - {None})
    for ns in namespaces:
        kube.kubectl("apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
    p = kube.kubectl("apply", "-R", "-f", str(POLICIES))
    assert "mcpgateway.gatehouse.dev/mcp" in p.stdout
    gw = kube.get_json("-n", "gatehouse-system", "mcpgateway", "mcp")
    assert gw["spec"]["allowedNamespaces"]["from"] == "Selector"


def test_placeholder_secrets_are_marked_and_excluded_from_sync():
    for f in POLICIES.rglob("*.yaml"):
        kinds = {d["kind"] for d in load_yaml_docs(f.read_text())}
        if "Secret" in kinds:
            assert f.name.endswith(".secret.yaml"), f"{f}: Secrets belong in *.secret.yaml (excluded from sync)"
            assert kinds == {"Secret"}
            assert "PLACEHOLDER" in f.read_text()


def apps() -> dict[str, dict]:
    out = {}
    for f in sorted(APPS.glob("*.yaml")):
        for d in load_yaml_docs(f.read_text()):
            out[f"{d['kind']}/{d['metadata']['name']}"] = d
    return out


def wave(obj: dict) -> int:
    return int(obj["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))


def test_sync_waves_put_crds_before_the_operator_before_policies():
    a = apps()
    order = [
        "AppProject/gatehouse-platform",
        "Application/gatehouse-crds",
        "Application/gatehouse",
        "Application/gatehouse-policies-platform",
        "ApplicationSet/gatehouse-policies-teams",
    ]
    waves = [wave(a[k]) for k in order]
    assert waves == sorted(waves) and len(set(waves)) == len(waves), dict(zip(order, waves))
    assert wave(a["AppProject/gatehouse-teams"]) == wave(a["AppProject/gatehouse-platform"])


def test_crds_are_server_side_applied_and_never_pruned():
    crds = apps()["Application/gatehouse-crds"]
    assert "ServerSideApply=true" in crds["spec"]["syncPolicy"]["syncOptions"]
    assert crds["spec"]["syncPolicy"]["automated"]["prune"] is False
    assert crds["spec"]["source"]["path"] == "charts/gatehouse/crds"
    chart = apps()["Application/gatehouse"]
    assert chart["spec"]["source"]["helm"]["skipCrds"] is True  # one owner for the CRDs


def test_policy_applications_skip_placeholder_secrets_and_missing_crds():
    a = apps()
    for spec in (a["Application/gatehouse-policies-platform"]["spec"],
                 a["ApplicationSet/gatehouse-policies-teams"]["spec"]["template"]["spec"]):
        assert spec["source"]["directory"]["exclude"] == "*.secret.yaml"
        assert "SkipDryRunOnMissingResource=true" in spec["syncPolicy"]["syncOptions"]


def test_teams_project_allows_only_gatehouse_kinds():
    teams = apps()["AppProject/gatehouse-teams"]["spec"]
    assert teams["clusterResourceWhitelist"] == []
    assert {r["group"] for r in teams["namespaceResourceWhitelist"]} == {"gatehouse.dev"}


def test_every_repo_url_is_a_placeholder():
    for f in list((GITOPS / "argocd").rglob("*.yaml")):
        text = f.read_text()
        for line in text.splitlines():
            if "repoURL:" in line or line.strip().startswith("- https://git"):
                assert "https://git.example.com/platform/" in line, f"{f}: {line}"


def test_the_chart_accepts_the_argo_cd_values(install):
    values = apps()["Application/gatehouse"]["spec"]["source"]["helm"]["valuesObject"]
    rel = install(values, release="argo")
    assert rel.one("NetworkPolicy")
    assert not rel.find("McpGateway")


def test_argo_cd_keeps_the_live_push_certificate(install):
    """Argo CD renders with `helm template`, where the chart's lookup sees nothing: without
    ignoring the generated Secret's data, every sync would replace the operator's certificate
    and CA and cut every gateway's config stream."""
    app = apps()["Application/gatehouse"]["spec"]
    assert "RespectIgnoreDifferences=true" in app["syncPolicy"]["syncOptions"]
    ignored = [d for d in app["ignoreDifferences"] if d["kind"] == "Secret"]
    assert len(ignored) == 1 and ignored[0]["jsonPointers"] == ["/data"]
    release = app["source"]["helm"]["releaseName"]
    assert ignored[0]["name"] == f"{release}-operator-push-tls"
    assert ignored[0]["namespace"] == app["destination"]["namespace"]
    # The chart names that Secret so (rendered under another release name: cluster-scoped objects
    # of a "gatehouse" release belong to the other tests).
    rel = install(app["source"]["helm"]["valuesObject"], release="gatehouse-argo")
    secret = rel.one("Secret", "gatehouse-argo-operator-push-tls")
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret.get("data", {}))
