"""benchmarks/gpu_check.sh --cpu, run for real: the dry run of the GPU machine's check.

The script runs once (about 1-2 minutes on 2 cores: ResNet-50's JAX compile dominates); the
tests read its JSON. In --cpu mode the image checks are skipped (no GPU to see; no image is
started), the step times are measured on the CPU at per-device batch 1 and not judged, and
PyTorch's clock check runs but is skipped (PyTorch on the CPU is synchronous). Without --cpu
on this GPU-less machine every check must fail with its reason (a few seconds).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from algoperf.hardware.fingerprint import Fingerprint
from algoperf.hardware.reference_profiles import compare_with, profile_names

ROOT = Path(__file__).resolve().parent.parent
STATUSES = {"passed", "failed", "skipped"}


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _module(ROOT / "benchmarks" / "gpu_check.py", "gpu_check")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu",
                           "--output", str(out)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable},
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("gpu_check mode=cpu passed=")
    return json.loads(out.read_text())


def _checks(node):
    """Every check entry (a dict with status and reason) in a report subtree."""
    if isinstance(node, dict) and "status" in node and "reason" in node:
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _checks(value)


def test_every_check_has_a_status_and_a_reason(report):
    assert report["mode"] == "cpu" and report["schema"] == 1
    assert set(report["checks"]) == {"fingerprint", "profiles", "images", "step_time",
                                     "clock_sync"}
    entries = list(_checks(report["checks"]))
    assert len(entries) == 1 + len(profile_names()) + 2 + 2 + 2
    for entry in entries:
        assert entry["status"] in STATUSES and entry["reason"].strip()


def test_summary_counts_the_checks_and_leaves_profile_mismatches_out(report):
    counted = [e["status"] for k in ("fingerprint", "images", "step_time", "clock_sync")
               for e in _checks(report["checks"][k])]
    assert report["summary"] == {s: counted.count(s) for s in ("passed", "failed", "skipped")}


def test_fingerprint_is_recorded_whole_and_profiles_agree_with_an_independent_comparison(
        report):
    fp_check = report["checks"]["fingerprint"]
    fp = Fingerprint.from_json(fp_check["data"])
    assert fp.digest() == fp_check["data"]["digest"]
    # No NVML here: skipped with NVML's reason, not passed.
    assert fp.nvml_problem is not None and fp_check["status"] == "skipped"
    assert fp_check["reason"].startswith("NVML: ")
    profiles = report["checks"]["profiles"]
    assert sorted(profiles) == profile_names()
    for name, entry in profiles.items():
        expected = compare_with(name, fingerprint=fp)
        assert entry["status"] == ("passed" if expected.certifiable else "failed"), name
        assert len(entry["differences"]) == len(expected.differences)
    assert profiles["a100x4"]["status"] == "failed"  # no GPU is not the A100 reference


def test_images_are_skipped_in_cpu_mode_with_the_reason(report):
    for framework in ("jax", "pytorch"):
        entry = report["checks"]["images"][framework]
        assert entry["status"] == "skipped" and "--cpu" in entry["reason"]


def test_step_times_are_measured_on_the_cpu_and_not_judged_against_the_a100(report):
    for framework in ("jax", "pytorch"):
        entry = report["checks"]["step_time"][framework]
        assert entry["status"] == "skipped", entry
        assert entry["workload"] == "imagenet_resnet" and entry["device_kind"] == "cpu"
        assert entry["per_device_batch"] == 1 and entry["batch_size"] == entry["devices"]
        assert 0 < entry["step_s"] < 120 and entry["first_step_s"] > 0
        assert entry["published_a100_s"] == gpu_check.A100_STEP_SECONDS[
            "imagenet_resnet"][framework]
        assert entry["ratio"] == pytest.approx(entry["step_s"] / entry["published_a100_s"])


def test_jax_clock_waits_for_queued_work_and_synchronous_pytorch_is_skipped(report):
    jax_entry = report["checks"]["clock_sync"]["jax"]
    assert jax_entry["status"] == "passed", jax_entry
    assert jax_entry["dispatch_s"] < jax_entry["work_s"] / 4
    assert jax_entry["submission_time_s"] >= 0.8 * jax_entry["work_s"]
    assert jax_entry["eval_time_s"] - jax_entry["control_eval_time_s"] < 0.5 * jax_entry["work_s"]
    assert jax_entry["trial_status"] == "completed"
    torch_entry = report["checks"]["clock_sync"]["pytorch"]
    assert torch_entry["status"] == "skipped" and "synchronously" in torch_entry["reason"]
    assert torch_entry["dispatch_s"] >= torch_entry["work_s"] / 4
    assert torch_entry["trial_status"] == "completed"


def test_clock_verdict_fails_when_the_eval_pays_for_the_queued_work():
    measured = {"dispatch_s": 0.001, "work_s": 2.0, "submission_time_s": 0.1,
                "eval_time_s": 2.3, "control_eval_time_s": 0.3}
    assert gpu_check.clock_verdict(measured)["status"] == "failed"
    waited = {**measured, "submission_time_s": 2.1, "eval_time_s": 0.4}
    assert gpu_check.clock_verdict(waited)["status"] == "passed"
    synchronous = {**measured, "dispatch_s": 1.9}
    verdict = gpu_check.clock_verdict(synchronous)
    assert verdict["status"] == "failed" and "nothing was checked" in verdict["reason"]


def test_reference_batches_are_the_nadamw_baselines():
    baseline = _module(ROOT / "submissions" / "nadamw" / "submission_jax.py", "nadamw_jax")
    for workload, batch in gpu_check.REFERENCE_BATCH.items():
        assert baseline.get_batch_size(workload) == batch
        assert batch % gpu_check.REFERENCE_GPUS == 0
    assert set(gpu_check.REFERENCE_BATCH) <= set(gpu_check.A100_STEP_SECONDS)


def test_gpu_mode_without_a_gpu_fails_every_check_it_could_not_make(tmp_path):
    """Without --cpu on a machine with no GPU nothing may pass: each check fails with why."""
    from algoperf.hardware.fingerprint import take_fingerprint

    if take_fingerprint().nvml_problem is None:
        pytest.skip("this machine has working NVML: the GPU mode would really run")
    out = tmp_path / "gpu.json"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--output",
                           str(out), "--budget-seconds", "120"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHON": sys.executable},
                          timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    checks = json.loads(out.read_text())["checks"]
    for key in ("fingerprint", "images", "step_time", "clock_sync"):
        for entry in _checks(checks[key]):
            assert entry["status"] == "failed" and entry["reason"].strip(), (key, entry)
