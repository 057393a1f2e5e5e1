"""What the chart tests share: the repository layout, the Kubernetes API double and kubectl, and
the real Helm library (PyPI `helm-sdkpy`) rendering, linting and installing the chart.

Helm stores releases in Secrets through client-go's typed client, which sends protobuf; the API
double only decodes JSON/YAML (see tests/kube-double/README.md). The tests therefore use Helm's
in-memory release storage (HELM_DRIVER=memory): every object of the chart still goes through
the double, only the release record stays in the test process. The Go runtime inside the library
reads the environment the process started with (later `os.environ` changes are invisible to it),
so conftest.py re-executes pytest once with HELM_DRIVER=memory when it is not set.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

import helm_sdkpy  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "gatehouse"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_yaml_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def deep_merge(base: dict, override: dict) -> dict:
    """Helm's values merge: maps merge recursively, everything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def ci_values_files() -> list[Path]:
    return sorted((CHART / "ci").glob("*.yaml"))


def read_values(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def run(coro):
    return asyncio.run(coro)


# === the Kubernetes API double ===


def _kube_double_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "debug" / "kube-double"
    if not binary.exists():
        subprocess.run(
            ["cargo", "build", "--locked", "-q", "-p", "gatehouse-kube-double", "--bin", "kube-double"],
            cwd=REPO,
            check=True,
        )
    return binary


class KubeDouble:
    """The `kube-double` binary, started on an OS-chosen port, killed at the end of the session."""

    def __init__(self, workdir: Path):
        self.kubeconfig = workdir / "kubeconfig"
        self.log = open(workdir / "kube-double.log", "w")
        self.proc = subprocess.Popen(
            [str(_kube_double_binary()), "--kubeconfig", str(self.kubeconfig), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            start_new_session=True,
        )
        self.url = self.proc.stdout.readline().strip()  # printed once it serves
        if not self.url.startswith("https://"):
            self.stop()
            raise RuntimeError(f"kube-double did not start (see {self.log.name})")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{p.stderr}")
        return p

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


# === the Helm library ===


class Release:
    """A chart installed against the double: the release record and its parsed objects."""

    def __init__(self, record: dict, config: helm_sdkpy.Configuration):
        self.record = record
        self.config = config
        self.name = record["name"]
        self.namespace = record["namespace"]
        self.objects = load_yaml_docs(record["manifest"])
        self.hooks = {h["name"]: h for h in record.get("hooks") or []}
        self.notes = record["info"].get("notes", "")

    def find(self, kind: str, name: str | None = None) -> list[dict]:
        return [
            o for o in self.objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
        ]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = self.find(kind, name)
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)


def lint(chart_dir: Path) -> dict:
    config = helm_sdkpy.Configuration(namespace="default")
    return run(helm_sdkpy.Lint(config).run(str(chart_dir)))


def chart_with_values(tmp: Path, values: dict) -> Path:
    """A copy of the chart whose values.yaml is the defaults merged with `values` — what
    `helm lint --values FILE` checks (the library's lint takes no values argument)."""
    dst = tmp / "gatehouse"
    shutil.copytree(CHART, dst)
    merged = deep_merge(read_values(CHART / "values.yaml"), values)
    (dst / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    return dst


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)
