"""pytest fixtures for tests/chart: one Kubernetes API double per session, and `install`, which
installs the chart through the real Helm library against it (see chartlib.py)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from chartlib import CHART, FIXTURES, KubeDouble, Release, helm_sdkpy, run


def pytest_configure(config):
    """Helm's Secret release storage sends protobuf, which the API double cannot decode, so the
    tests use Helm's in-memory storage (HELM_DRIVER=memory). The Go runtime in the Helm library
    only sees the environment the process started with, so when the variable is not set, pytest
    is started again, once, with the same command line and the variable set."""
    if os.environ.get("HELM_DRIVER") == "memory":
        return
    os.environ["HELM_DRIVER"] = "memory"
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()  # give the new process the real stdout/stderr
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


@pytest.fixture(scope="session")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="gatehouse-chart-tests-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def kube(workdir) -> KubeDouble:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl (1.32) is required by the chart tests")
    double = KubeDouble(workdir)
    # Kinds a real cluster serves but the double does not (see fixtures/stub-crds.yaml).
    double.kubectl("apply", "-f", str(FIXTURES / "stub-crds.yaml"))
    yield double
    double.stop()


_counter = [0]


@pytest.fixture(scope="session")
def install(kube):
    """install(values, release=None, namespace=None) -> Release: `helm install` through the real
    Helm library against the API double, each call in a fresh namespace (created by Helm)."""

    def _install(values: dict | None = None, release: str | None = None, namespace: str | None = None) -> Release:
        _counter[0] += 1
        release = release or f"r{_counter[0]}"
        namespace = namespace or f"chart-test-{_counter[0]}"
        config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=str(kube.kubeconfig))
        record = run(
            helm_sdkpy.Install(config).run(
                release, str(CHART), values=values or None, create_namespace=True, wait=False, timeout=120
            )
        )
        return Release(record, config)

    return _install
