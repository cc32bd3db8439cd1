"""Shared test settings: the real AlgoPerf logs, and the real Docker engine and images.

The real logs (AlgoPerf's v0.6 leaderboard) live in tests/data/algoperf-logs, with their source
and licence in its README; the published-score reproduction never skips.

The engine fixtures build the base and the cpu image once per session (reused across sessions
while their inputs are unchanged). Without an engine the tests using them skip with the reason;
under CI=true they fail instead (.ci/docker-up starts one).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALGOPERF_LOGS = ROOT / "tests" / "data" / "algoperf-logs"

# PyTorch on one intra-op thread, here and in every process a test starts (set before any test
# module imports torch): on two shared cores, two threads waiting for each other made a small
# model's step 8-12 times slower, and runs with a budget then missed their targets.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The tests compile JAX programs without the runner's frameworks.setup: give XLA the stack the
# runner gives it (JAX Shampoo on the Conformer overflowed the default 8 MiB).
from algoperf import frameworks  # noqa: E402

frameworks.allow_deep_compiles()


# The model tests of AlgoPerf's full-size workloads (the conformance tests that build the model,
# JAX-vs-PyTorch parity, `algoperf workloads check`, tests/test_imagenet_models.py) take several
# times CI's 45-minute budget
# on 2 CPU cores, XLA's compiles most of it. They form the `full_models` tier, which `make
# test-full-models` runs and `make test` (CI) leaves out; the dev workloads' model tests, every
# row's shape-only parameter count and its API checks stay in CI, and so do AlgoPerf's
# reduced rows (SMALL_ROWS).
FULL_MODEL_FILES = ("test_workload_conformance.py", "test_parity.py", "test_workloads_check.py")
BUILD_EVERY_MODEL = ("test_parity.py", "test_workloads_check.py")  # else: the ones using `zoo`
FULL_MODEL_MODULES = ("test_imagenet_models.py",)
# AlgoPerf's own reduced rows, small enough for CI (criteo1tb_test: a 65,536-row table).
SMALL_ROWS = ("criteo1tb_test",)


def _full_size_row(name: object) -> bool:
    from algoperf.workloads import registry

    return isinstance(name, str) and name in registry.WORKLOADS \
        and not registry.WORKLOADS[name].dev and name not in SMALL_ROWS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.name
        params = getattr(getattr(item, "callspec", None), "params", {})
        builds_model = "zoo" in item.fixturenames or module in BUILD_EVERY_MODEL
        if module in FULL_MODEL_MODULES or (
                module in FULL_MODEL_FILES and builds_model and _full_size_row(params.get("name"))):
            item.add_marker(pytest.mark.full_models)


def _engine_unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true needs a Docker engine: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def client():
    """A docker SDK client of the real engine."""
    from algoperf.containers import engine
    from algoperf.errors import UserError

    try:
        return engine.connect(timeout=1800)
    except UserError as e:
        _engine_unavailable(str(e))


@pytest.fixture(scope="session")
def base_image(client):
    """The Debian base image built with debootstrap (no registry)."""
    from algoperf.containers import base
    from algoperf.errors import UserError

    try:
        return base.build_base(client, echo=lambda m: print(m, file=sys.stderr))
    except UserError as e:
        _engine_unavailable(f"cannot build the base image: {e}")


@pytest.fixture(scope="session")
def cpu_image(client, base_image):
    """The `cpu` image of the committed lockfile, on the base image."""
    from algoperf.containers import base, build, variants

    return build.build_image(client, variants.get_variant("cpu"), base_image=base.DEFAULT_TAG,
                             echo=lambda m: print(m, file=sys.stderr))
