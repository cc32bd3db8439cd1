"""Shared test settings: where the real AlgoPerf logs are, and CI's refusal to skip them.

The real logs live in ../shared/algoperf-logs beside the checkout (as on the developers'
machines and in CI). Tests that need them skip elsewhere, but under CI=true a missing folder
fails the session: the published-score reproduction must never pass by being skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALGOPERF_LOGS = Path(os.environ.get("ALGOPERF_LOGS", ROOT.parent / "shared" / "algoperf-logs"))


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("CI") == "true" and not (ALGOPERF_LOGS / "v0.6").is_dir():
        raise pytest.UsageError(
            f"CI=true but the real AlgoPerf logs are missing at {ALGOPERF_LOGS}; "
            "check out ../shared beside the repository or set ALGOPERF_LOGS"
        )
