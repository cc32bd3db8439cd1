"""`algoperf docker run --signing-key` on a real Docker engine: the host witnesses the sandboxed
run live and seals it, and `algoperf verify` certifies the result (exit 0), or fails it once a
file is changed. The engine and the cpu image come from conftest's fixtures (skipped without an
engine, failing under CI=true, where .ci/docker-up starts one)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from algoperf.verification.keys import generate_keypair

ROOT = Path(__file__).resolve().parent.parent
NADAMW = ROOT / "submissions" / "nadamw"


def algoperf(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "algoperf", *args], capture_output=True,
                          text=True, timeout=1200, cwd=cwd)


@pytest.fixture(scope="module")
def sealed_run(cpu_image, tmp_path_factory) -> tuple[Path, Path]:
    """A digits run in the sandbox, witnessed and sealed with a fresh organizer key."""
    keys = tmp_path_factory.mktemp("keys")
    private, public = generate_keypair(keys)
    experiments = tmp_path_factory.mktemp("experiments")
    done = algoperf("docker", "run", "--image", cpu_image.id, "--submission",
                    str(NADAMW / "submission_pytorch.py"), "--framework", "pytorch",
                    "--workload", "digits", "--experiment-dir", str(experiments),
                    "--experiment-name", "nadamw", "--tuning-search-space",
                    str(NADAMW / "tuning_search_space.json"), "--num-tuning-trials", "1",
                    "--seed", "0", "--reference", "cpu-dev", "--allow-nonreference",
                    "--signing-key", str(private))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "witnessed and sealed 1 trial(s)" in done.stderr
    return experiments / "nadamw", public


def test_sealed_sandboxed_run_is_verified(sealed_run, tmp_path):
    run_dir, public = sealed_run
    trial = run_dir / "study_0" / "digits_pytorch" / "trial_1"
    assert (trial / "seal.dsse.json").is_file() and (trial / "witness_0.dsse.json").is_file()
    done = algoperf("verify", str(run_dir), "--pubkey", str(public), "--out",
                    str(tmp_path / "out"))
    cert = json.loads((tmp_path / "out" / "certificate.intoto.json").read_text())
    checks = {c["name"]: c for c in cert["predicate"]["trials"][0]["checks"]}
    # The measurement check is a finding on a busy host, never a verdict (see docs/verify.md).
    assert checks["measurement"]["status"] in ("pass", "note", "skip")
    not_passed = {k: c["summary"] for k, c in checks.items()
                  if c["status"] != "pass" and k != "measurement"}
    # The CPU machine matches the cpu-dev profile, so everything is certified; a host without
    # 2 usable threads or 4 GiB would make only the hardware check uncertifiable.
    assert set(not_passed) <= {"hardware"}, not_passed
    assert done.returncode == (0 if not not_passed else 2), done.stdout
    assert checks["environment"]["summary"].startswith("image sha256:")
    assert "VERIFIED" in done.stdout or not_passed


def test_changed_file_in_a_sealed_sandboxed_run_fails(sealed_run, tmp_path):
    run_dir, public = sealed_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "nadamw"))
    csv = copy / "study_0" / "digits_pytorch" / "trial_1" / "eval_measurements.csv"
    csv.write_text(csv.read_text().replace("0.", "0.0", 1))
    done = algoperf("verify", str(copy), "--pubkey", str(public), "--out",
                    str(tmp_path / "out"))
    assert done.returncode == 1, done.stdout
    assert "eval_measurements.csv: changed after it was sealed" in done.stdout
