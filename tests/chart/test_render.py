"""Render the chart with the real Helm library (installed against the API double, which returns
the manifest Helm sent) and check the objects a cluster admin reviews: RBAC, security contexts,
probes, images, labels, and every optional object."""

from __future__ import annotations

import base64
import re

import pytest

import helm_sdkpy
from chartlib import CHART, load_yaml_docs, read_values, run
from podsecurity import violations

COMMON_LABELS = {
    "app.kubernetes.io/name": "gatehouse",
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/part-of": "gatehouse",
    "app.kubernetes.io/version": "0.1.0",
    "helm.sh/chart": "gatehouse-0.1.0",
}


@pytest.fixture(scope="module")
def default(install):
    return install(release="gatehouse", namespace="gatehouse-system")


@pytest.fixture(scope="module")
def full(install):
    return install(read_values(CHART / "ci" / "all-features-values.yaml"), release="full")


@pytest.fixture(scope="module")
def single(install):
    return install(read_values(CHART / "ci" / "single-replica-values.yaml"), release="dev")


@pytest.fixture(scope="module")
def external_sa(install):
    return install(read_values(CHART / "ci" / "existing-serviceaccount-values.yaml"), release="gatehouse")


# === what gets rendered ===


def test_default_install_renders_exactly_the_operator_objects(default):
    assert default.kinds() == sorted([
        "ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget", "Role",
        "RoleBinding", "Secret", "Service", "ServiceAccount",
    ])
    assert list(default.hooks) == ["gatehouse-operator-test-ready"]


def test_names_follow_the_release(default, install, single):
    # `helm install gatehouse` → gatehouse-operator; any other release name → <release>-gatehouse-operator.
    assert default.one("Deployment")["metadata"]["name"] == "gatehouse-operator"
    assert single.one("Deployment")["metadata"]["name"] == "dev-gatehouse-operator"


def test_every_optional_object_can_be_turned_on(full):
    assert full.kinds() == sorted([
        "ClusterRole", "ClusterRoleBinding", "Deployment", "McpGateway", "NetworkPolicy",
        "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount",
        "ServiceMonitor",
    ])


def test_single_replica_has_no_pod_disruption_budget(single):
    assert not single.find("PodDisruptionBudget")
    assert single.one("Deployment")["spec"]["replicas"] == 1


def test_rbac_and_service_account_can_be_managed_outside_the_chart(external_sa):
    assert external_sa.kinds() == ["Deployment", "PodDisruptionBudget", "Secret", "Service"]
    pod = external_sa.one("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "gatehouse-operator"


# === the operator Deployment ===


def operator_container(release) -> dict:
    (c,) = release.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def test_operator_runs_with_leader_election_and_the_gateway_image(default):
    dep = default.one("Deployment")
    assert dep["spec"]["replicas"] == 2
    c = operator_container(default)
    assert c["args"] == [
        "run",
        "--leader-election-namespace", "gatehouse-system",
        "--gateway-image", "gatehouse/gatehouse-gateway:0.1.0",
        "--push-listen", "0.0.0.0:8443",
        "--metrics-listen", "0.0.0.0:9090",
        "--push-tls-cert", "/etc/gatehouse/push-tls/tls.crt",
        "--push-tls-key", "/etc/gatehouse/push-tls/tls.key",
        "--push-ca", "/etc/gatehouse/push-tls/ca.crt",
    ]
    assert c["image"] == "gatehouse/gatehouse-operator:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    env = {e["name"]: e for e in c["env"]}
    assert env["GATEHOUSE_PUSH_URL"]["value"] == "https://gatehouse-operator.gatehouse-system.svc:8443"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_operator_ports_and_probes(default):
    c = operator_container(default)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"push": 8443, "metrics": 9090}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_operator_has_requests_and_a_memory_limit(default, full):
    assert operator_container(default)["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert operator_container(full)["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}


@pytest.mark.parametrize("which", ["default", "full", "single", "external_sa"])
def test_every_pod_meets_pod_security_restricted(which, request):
    release = request.getfixturevalue(which)
    pod = release.one("Deployment")["spec"]["template"]["spec"]
    assert violations(pod) == []
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["automountServiceAccountToken"] is True  # it talks to the API server
    # The test hook pod too.
    (hook,) = release.hooks.values()
    assert violations(release_hook_pod(hook)["spec"]) == []


def test_the_restricted_checker_catches_violations():
    assert "op: allowPrivilegeEscalation is not false" in violations({"containers": [{"name": "op"}]})
    assert "op: readOnlyRootFilesystem is not true" in violations({"containers": [{"name": "op"}]})


def test_images_with_registry_and_digest(full, single):
    c = operator_container(full)
    assert c["image"] == "registry.example.com/platform/gatehouse/gatehouse-operator@sha256:" + "1" * 64
    assert c["imagePullPolicy"] == "Always"
    gateway_image = c["args"][c["args"].index("--gateway-image") + 1]
    assert gateway_image == "registry.example.com/platform/gatehouse/gatehouse-gateway@sha256:" + "2" * 64
    pod = full.one("Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    c = operator_container(single)
    assert c["image"] == "gatehouse/gatehouse-operator:dev"
    assert c["imagePullPolicy"] == "Never"


def test_replicas_spread_over_nodes(default, full, single):
    soft = default.one("Deployment")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" in soft
    hard = full.one("Deployment")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard
    assert "affinity" not in single.one("Deployment")["spec"]["template"]["spec"]


def test_rollouts_never_drop_below_the_current_replicas(default):
    assert default.one("Deployment")["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


# === labels, Service, PDB ===


@pytest.mark.parametrize("which", ["default", "full"])
def test_every_object_carries_the_standard_labels(which, request):
    release = request.getfixturevalue(which)
    for o in release.objects + [release_hook_pod(h) for h in release.hooks.values()]:
        labels = o["metadata"].get("labels") or {}
        for k, v in COMMON_LABELS.items():
            assert labels.get(k) == v, f"{o['kind']} {o['metadata']['name']}: label {k}"
        assert labels["app.kubernetes.io/instance"] == release.name
        if which == "full":
            assert labels["team"] == "platform"


def test_selectors_select_the_operator_pods(default):
    dep = default.one("Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    for selector in (
        dep["spec"]["selector"]["matchLabels"],
        default.one("Service")["spec"]["selector"],
        default.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
        assert selector["app.kubernetes.io/component"] == "operator"


def test_service_exposes_push_and_metrics(default):
    svc = default.one("Service", "gatehouse-operator")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        "push": (8443, "push"),
        "metrics": (9090, "metrics"),
    }
    assert svc["spec"]["type"] == "ClusterIP"
    assert "https://gatehouse-operator.gatehouse-system.svc:8443" in default.notes


def test_pod_disruption_budget_keeps_one_operator(default):
    assert default.one("PodDisruptionBudget")["spec"]["minAvailable"] == 1


# === RBAC: exactly the chart README's table ===


def readme_rbac_rows() -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, scope) for every cell of the README's RBAC table."""
    text = (CHART / "README.md").read_text()
    section = text.split("## RBAC", 1)[1]
    rows = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`"):
            continue
        groups = re.findall(r"`([^`]*)`", cells[0])
        resources = re.findall(r"`([^`]*)`", cells[1])
        verbs = re.findall(r"`([^`]*)`", cells[2])
        for g in groups:
            for r in resources:
                for v in verbs:
                    rows.add(('' if g == '""' else g, r, v, cells[3]))
    return rows


def rendered_rbac_rows(release) -> set[tuple[str, str, str, str]]:
    rows = set()
    for kind, scope in (("ClusterRole", "cluster"), ("Role", "namespace")):
        for rule in release.one(kind)["rules"]:
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    for v in rule["verbs"]:
                        rows.add((g, r, v, scope))
    return rows


def test_rbac_is_exactly_what_the_readme_documents(default):
    documented = readme_rbac_rows()
    assert len(documented) > 50, "README RBAC table not found"
    rendered = rendered_rbac_rows(default)
    assert rendered - documented == set(), "granted but not documented"
    assert documented - rendered == set(), "documented but not granted"


def test_rbac_has_no_wildcards_or_privilege_escalation(default):
    rows = rendered_rbac_rows(default)
    assert not [r for r in rows if "*" in r]
    assert not [r for r in rows if r[2] in ("escalate", "bind", "impersonate")]
    secret_verbs = {v for g, r, v, _ in rows if r == "secrets"}
    # create/update/delete only so the operator may grant them to gateways for per-user grant
    # Secrets (README "Per-user grant Secrets"); never anything broader.
    assert secret_verbs == {"get", "list", "watch", "create", "update", "delete"}
    assert not [r for r in rows if r[1] in ("pods", "clusterroles", "clusterrolebindings", "nodes")]
    assert {(r[1], r[2]) for r in rows if r[3] == "namespace"} == {
        ("leases", "get"), ("leases", "create"), ("leases", "update")
    }


def test_bindings_name_the_operator_service_account(default):
    sa = default.one("ServiceAccount")["metadata"]["name"]
    assert default.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == sa
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        b = default.one(kind)
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "gatehouse-system"}]
    assert default.one("ClusterRoleBinding")["roleRef"]["name"] == default.one("ClusterRole")["metadata"]["name"]
    assert default.one("RoleBinding")["roleRef"]["name"] == default.one("Role")["metadata"]["name"]
    assert default.one("Role")["metadata"]["namespace"] == "gatehouse-system"


# === optional objects ===


def test_default_gateway_maps_values_onto_the_spec(full):
    gw = full.one("McpGateway", "mcp")
    assert gw["metadata"]["namespace"] == full.namespace
    assert gw["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "1"
    assert gw["spec"] == {
        "replicas": 3,
        "publicUrl": "https://mcp.example.com",
        "trustProviders": ["corp-oidc", "cluster-workloads"],
        "allowedNamespaces": {"from": "Selector", "selector": {"matchLabels": {"gatehouse.dev/attach": "true"}}},
        "allowedOrigins": ["https://claude.ai"],
        "listener": {"port": 8080},
        "service": {"type": "LoadBalancer", "port": 443},
        "session": {"keySecretRef": {"name": "gateway-session", "key": "key"}},
        "audit": {"sink": "Stdout"},
    }


def test_service_monitor_scrapes_the_metrics_port(full):
    sm = full.one("ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}]
    assert sm["spec"]["selector"]["matchLabels"] == full.one("Service")["spec"]["selector"]


def test_network_policy_admits_only_push_and_metrics(full):
    np = full.one("NetworkPolicy")
    assert np["spec"]["podSelector"]["matchLabels"] == full.one("Service")["spec"]["selector"]
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ports = [[p["port"] for p in rule["ports"]] for rule in np["spec"]["ingress"]]
    assert ports == [[8443], [9090]]
    assert np["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"gatehouse.dev/gateways": "true"}}}]
    assert len(np["spec"]["egress"]) == 2


# === the helm test hook ===


def release_hook_pod(hook: dict) -> dict:
    import yaml

    return yaml.safe_load(hook["manifest"])


def test_helm_test_hook_checks_readyz_through_the_service(default):
    hook = default.hooks["gatehouse-operator-test-ready"]
    assert hook["events"] == ["test"]
    pod = release_hook_pod(hook)
    assert pod["kind"] == "Pod"
    assert pod["spec"]["restartPolicy"] == "Never"
    (c,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["READYZ_URL"] == "http://gatehouse-operator.gatehouse-system.svc:9090/readyz"
    assert "wget" in c["command"][-1] and "$READYZ_URL" in c["command"][-1]
    assert c["image"] == "busybox:1.37"


# === TLS on the push endpoint ===


def _pem(secret: dict, key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def test_the_push_endpoint_serves_tls_with_a_generated_ca_by_default(default):
    # That the CA signed the certificate for the Service's names is proven by a real handshake
    # with the operator (test_install.py).
    secret = default.one("Secret", "gatehouse-operator-push-tls")
    assert secret["type"] == "kubernetes.io/tls"
    assert sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    assert _pem(secret, "ca.crt").startswith("-----BEGIN CERTIFICATE-----")
    assert _pem(secret, "tls.crt").startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY-----" in _pem(secret, "tls.key")
    assert _pem(secret, "ca.crt") != _pem(secret, "tls.crt")

    pod = default.one("Deployment")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert {"name": "push-tls", "mountPath": "/etc/gatehouse/push-tls", "readOnly": True} in c["volumeMounts"]
    (vol,) = [v for v in pod["volumes"] if v["name"] == "push-tls"]
    assert vol["secret"]["secretName"] == "gatehouse-operator-push-tls"
    assert vol["secret"]["defaultMode"] == 0o440
    assert sorted(i["key"] for i in vol["secret"]["items"]) == ["ca.crt", "tls.crt", "tls.key"]
    (port,) = [p for p in default.one("Service")["spec"]["ports"] if p["name"] == "push"]
    assert port["appProtocol"] == "https"


def test_push_tls_can_use_an_existing_secret(install):
    rel = install({"operator": {"pushTls": {"existingSecret": "operator-push-cert"}}}, release="byo")
    assert not rel.find("Secret"), "no generated Secret when one is brought"
    pod = rel.one("Deployment")["spec"]["template"]["spec"]
    (vol,) = [v for v in pod["volumes"] if v["name"] == "push-tls"]
    assert vol["secret"]["secretName"] == "operator-push-cert"
    (c,) = pod["containers"]
    assert "--push-ca" in c["args"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["GATEHOUSE_PUSH_URL"].startswith("https://byo-gatehouse-operator.")


def test_push_tls_disabled_renders_the_plain_http_setup(install):
    rel = install({"operator": {"pushTls": {"enabled": False}}}, release="plain")
    assert not rel.find("Secret")
    pod = rel.one("Deployment")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert not [a for a in c["args"] if a.startswith("--push-tls") or a == "--push-ca"], c["args"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert [m["name"] for m in c["volumeMounts"]] == ["tmp"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["GATEHOUSE_PUSH_URL"] == f"http://plain-gatehouse-operator.{rel.namespace}.svc:8443"
    (port,) = [p for p in rel.one("Service")["spec"]["ports"] if p["name"] == "push"]
    assert port["appProtocol"] == "http"


def test_an_upgrade_keeps_the_generated_certificate(install, kube):
    rel = install(release="keep")
    before = rel.one("Secret")["data"]
    after = run(
        helm_sdkpy.Upgrade(rel.config).run(
            "keep", str(CHART), values={"operator": {"logLevel": "debug"}}, wait=False, timeout=120
        )
    )
    (secret,) = [o for o in load_yaml_docs(after["manifest"]) if o["kind"] == "Secret"]
    assert secret["data"] == before
    stored = kube.get_json("-n", rel.namespace, "secret", "keep-gatehouse-operator-push-tls")
    assert stored["data"] == before
