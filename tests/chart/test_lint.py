"""The real Helm library lints the chart with its defaults and with every file in ci/, and
values.schema.json rejects bad values with messages that name the offending key."""

from __future__ import annotations

import pytest
import yaml

import helm_sdkpy
from chartlib import CHART, FIXTURES, chart_with_values, ci_values_files, lint, read_values, run

# Helm's lint severities: 1 info, 2 warning, 3 error. Like `helm lint --strict`, warnings fail.
WARNING = 2


def assert_lint_clean(result: dict, what: str):
    assert result["TotalChartsLinted"] == 1, result
    # The library serialises Go errors as {} (no text): the path and severity say where to look;
    # test_render.py installs the same values and shows the full message if rendering fails.
    bad = [m for m in result["Messages"] if m["Severity"] >= WARNING]
    assert not bad and not result["Errors"], f"helm lint {what}: problems in {[m['Path'] for m in bad]}"


def test_lint_with_default_values():
    assert_lint_clean(lint(CHART), "with default values")


@pytest.mark.parametrize("values_file", ci_values_files(), ids=lambda p: p.name)
def test_lint_with_ci_values(values_file, tmp_path):
    assert_lint_clean(lint(chart_with_values(tmp_path, read_values(values_file))), values_file.name)


def test_there_are_ci_values_files():
    names = {p.name for p in ci_values_files()}
    assert {"default-values.yaml", "all-features-values.yaml"} <= names


BAD_VALUES = sorted((FIXTURES / "bad-values").glob("*.yaml"))


def expected_messages(path) -> list[str]:
    """Each bad-values fixture starts with `# expect: <text>` lines: fragments of the error."""
    return [
        line.split(":", 1)[1].strip()
        for line in path.read_text().splitlines()
        if line.startswith("# expect:")
    ]


@pytest.mark.parametrize("values_file", BAD_VALUES, ids=lambda p: p.stem)
def test_bad_values_are_rejected_with_a_clear_message(values_file, kube):
    expected = expected_messages(values_file)
    assert expected, f"{values_file.name} has no '# expect:' line"
    config = helm_sdkpy.Configuration(namespace="bad-values", kubeconfig=str(kube.kubeconfig))
    with pytest.raises(helm_sdkpy.InstallError) as err:
        run(
            helm_sdkpy.Install(config).run(
                f"bad-{values_file.stem}", str(CHART), values=read_values(values_file), wait=False, timeout=30
            )
        )
    message = str(err.value)
    assert "values don't meet the specifications of the schema" in message, message
    for fragment in expected:
        assert fragment in message, f"{values_file.name}: {fragment!r} not in:\n{message}"
    # Nothing was created: schema validation happens before any object is sent.
    assert kube.kubectl("get", "namespace", "bad-values", check=False).returncode != 0


@pytest.mark.parametrize("values_file", BAD_VALUES, ids=lambda p: p.stem)
def test_lint_reports_bad_values_as_errors(values_file, tmp_path):
    result = lint(chart_with_values(tmp_path, read_values(values_file)))
    assert any(m["Severity"] >= 3 and m["Path"] == "values.yaml" for m in result["Messages"]), result


def test_bad_values_fixtures_exist():
    assert len(BAD_VALUES) >= 5
    for f in BAD_VALUES:
        yaml.safe_load(f.read_text())
