"""Files generated from a source of truth stay in step with it: the chart's CRDs with crds/, the
CRD reference with the CRD schemas. (The argocd-cm snippet: test_argocd_health.py.)"""

from __future__ import annotations

import subprocess
import sys

import yaml

from chartlib import CHART, REPO


def test_chart_crds_are_byte_identical_to_crds_dir():
    source = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    assert source, "crds/ is empty"
    assert sorted(chart) == sorted(source), "file sets differ: cp crds/*.yaml charts/gatehouse/crds/"
    for name in source:
        assert chart[name] == source[name], f"charts/gatehouse/crds/{name} differs from crds/{name}: cp crds/*.yaml charts/gatehouse/crds/"


def test_crd_reference_is_generated_from_the_crds():
    p = subprocess.run([sys.executable, str(REPO / "docs" / "gen_crd_reference.py"), "--check"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_crd_reference_documents_every_field_of_every_kind():
    text = (REPO / "docs" / "crd-reference.md").read_text()
    for f in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(f.read_text())
        kind = crd["spec"]["names"]["kind"]
        assert f"## {kind}\n" in text
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for field in spec["properties"]:
            assert f"`spec.{field}`" in text, f"{kind}.spec.{field} missing"
        for rule in spec.get("x-kubernetes-validations") or []:
            assert rule["message"] in text


def test_dockerfiles_build_one_binary_each_into_a_non_root_distroless_image():
    for name in ("operator", "gateway", "demo-server"):
        text = (REPO / "images" / f"{name}.Dockerfile").read_text()
        stages = [l for l in text.splitlines() if l.startswith("FROM ")]
        assert len(stages) == 2, f"{name}: multi-stage build expected"
        assert stages[0].startswith("FROM rust:") and stages[0].endswith(" AS build")
        assert "distroless" in stages[1] and stages[1].endswith(":nonroot")
        assert f"cargo build --release --locked -p gatehouse-{name} --bin gatehouse-{name}" in text
        runtime = text.split(stages[1], 1)[1]
        assert "USER 65532:65532" in runtime
        assert "RUN " not in runtime, f"{name}: the runtime stage has no shell to RUN in"
        assert f'ENTRYPOINT ["/usr/local/bin/gatehouse-{name}"]' in runtime
        assert (REPO / "images" / f"{name}.Dockerfile.dockerignore").read_text().startswith("#")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["operator"]["image"]["repository"] == "gatehouse/gatehouse-operator"
    assert values["gateway"]["image"]["repository"] == "gatehouse/gatehouse-gateway"
