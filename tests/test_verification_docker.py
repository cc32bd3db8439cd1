"""`algoperf docker run --signing-key` on a real Docker engine: the host witnesses the sandboxed
run live, takes its hardware samples and seals it, and `algoperf verify` certifies the result
(exit 0), or fails it once a file or a sample is changed. The engine and the cpu image come
from conftest's fixtures (skipped without an engine, failing under CI=true, where
.ci/docker-up starts one)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_verification import rewrite_events

from algoperf.logs.events import HARDWARE_SAMPLE, read_events
from algoperf.verification.keys import generate_keypair, trusted_keys
from algoperf.verification.witness import open_witness, witness_files

ROOT = Path(__file__).resolve().parent.parent
NADAMW = ROOT / "submissions" / "nadamw"


def algoperf(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "algoperf", *args], capture_output=True,
                          text=True, timeout=1200, cwd=cwd)


@dataclasses.dataclass(frozen=True)
class SealedRun:
    run_dir: Path
    public: Path  # the organizer's public key
    client_pid: int  # of the `algoperf docker run` process, on the host
    output: str

    @property
    def trial(self) -> Path:
        return self.run_dir / "study_0" / "digits_pytorch" / "trial_1"


@pytest.fixture(scope="module")
def sealed_run(cpu_image, tmp_path_factory) -> SealedRun:
    """A digits run in the sandbox, witnessed and sealed with a fresh organizer key."""
    keys = tmp_path_factory.mktemp("keys")
    private, public = generate_keypair(keys)
    experiments = tmp_path_factory.mktemp("experiments")
    client = subprocess.Popen(
        [sys.executable, "-m", "algoperf", "docker", "run", "--image", cpu_image.id,
         "--submission", str(NADAMW / "submission_pytorch.py"), "--framework", "pytorch",
         "--workload", "digits", "--experiment-dir", str(experiments), "--experiment-name",
         "nadamw", "--tuning-search-space", str(NADAMW / "tuning_search_space.json"),
         "--num-tuning-trials", "1", "--seed", "0", "--reference", "cpu-dev",
         "--allow-nonreference", "--signing-key", str(private)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = client.communicate(timeout=1200)
    assert client.returncode == 0, stdout + stderr
    assert "witnessed and sealed 1 trial(s)" in stderr
    return SealedRun(experiments / "nadamw", public, client.pid, stdout + stderr)


def test_sealed_sandboxed_run_is_verified(sealed_run, tmp_path):
    run_dir, public = sealed_run.run_dir, sealed_run.public
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
    assert checks["hardware samples"]["status"] == "pass"
    assert "VERIFIED" in done.stdout or not_passed


def test_changed_file_in_a_sealed_sandboxed_run_fails(sealed_run, tmp_path):
    run_dir, public = sealed_run.run_dir, sealed_run.public
    copy = Path(shutil.copytree(run_dir, tmp_path / "nadamw"))
    csv = copy / "study_0" / "digits_pytorch" / "trial_1" / "eval_measurements.csv"
    csv.write_text(csv.read_text().replace("0.", "0.0", 1))
    done = algoperf("verify", str(copy), "--pubkey", str(public), "--out",
                    str(tmp_path / "out"))
    assert done.returncode == 1, done.stdout
    assert "eval_measurements.csv: changed after it was sealed" in done.stdout


def test_the_host_took_the_hardware_samples_and_the_container_none(sealed_run):
    events = read_events(sealed_run.trial / "events.jsonl")
    assert [e for e in events if e["type"] == HARDWARE_SAMPLE] == []
    (record,) = [open_witness(p.name, p.read_bytes(), trusted_keys([sealed_run.public]))
                 for p in witness_files(sealed_run.trial)]
    # The docker run client sampled: its pid, in this (the host's) PID namespace, not the
    # container's own namespace.
    assert record.sample_source["pid"] == sealed_run.client_pid
    assert record.sample_source["pid_namespace"] == os.readlink("/proc/self/ns/pid")
    assert len(record.samples) >= 2
    assert record.samples[0].t_mono <= record.observations[0].t_mono  # before run_start
    assert record.samples[-1].t_mono >= record.observations[-1].t_mono - 1.0  # at run_end
    assert all("cpu_freq_mhz" in s.data for s in record.samples)
    assert f"hardware samples, taken on the host (pid {sealed_run.client_pid})" in \
        sealed_run.output
    assert "samples taken by the host" in sealed_run.output  # the runner's line inside


def sample_check(done: subprocess.CompletedProcess, out: Path) -> dict:
    """The "hardware samples" check of the one trial, from the certificate in ``out``."""
    assert done.returncode == 1, done.stdout
    cert = json.loads((out / "certificate.intoto.json").read_text())
    (trial,) = cert["predicate"]["trials"]
    return next(c for c in trial["checks"] if c["name"] == "hardware samples")


def test_an_edited_host_sample_or_one_forged_into_the_log_fails(sealed_run, tmp_path):
    edited = Path(shutil.copytree(sealed_run.run_dir, tmp_path / "edited"))
    (path,) = witness_files(edited / sealed_run.trial.relative_to(sealed_run.run_dir))
    envelope = json.loads(path.read_bytes())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["hardware_samples"]["samples"][-1][2]["cpu_freq_mhz"] = 1.0
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    path.write_text(json.dumps(envelope))
    done = algoperf("verify", str(edited), "--pubkey", str(sealed_run.public), "--out",
                    str(tmp_path / "edited-out"))
    check = sample_check(done, tmp_path / "edited-out")
    assert check["status"] == "fail"
    assert "its hardware samples are not trusted" in check["problems"][0]["reason"]

    forged = Path(shutil.copytree(sealed_run.run_dir, tmp_path / "forged"))
    log = forged / sealed_run.trial.relative_to(sealed_run.run_dir) / "events.jsonl"
    sample = {"seq": 1, "type": HARDWARE_SAMPLE, "t_wall": 0.0, "t_mono": 0.0,
              "data": {"gpus": {}, "cpu_freq_mhz": 3000.0}, "prev": ""}
    rewrite_events(log, lambda records: [records[0], sample, *records[1:]])
    done = algoperf("verify", str(forged), "--pubkey", str(sealed_run.public), "--out",
                    str(tmp_path / "forged-out"))
    check = sample_check(done, tmp_path / "forged-out")
    assert check["status"] == "fail"
    assert [(p["line"], p["reason"]) for p in check["problems"]] == [
        (2, "a hardware_sample written inside the sandbox while the host sampled (the runner "
            "there writes none)")]
