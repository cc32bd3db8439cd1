"""Hardware samples taken on the host of a sandboxed run: `HostSamples` keeps them with the
host's clocks, the witness signs each trial the samples that bracket it, the runner takes none
when the host samples, and verification's "hardware samples" check trusts only the host's.
The real `algoperf docker run` of digits is in tests/test_verification_docker.py."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pynvml
import pytest

from algoperf.hardware import HOST_SAMPLES_ENV, HostSamples, trial_sampler, use_nvml
from algoperf.hardware.fake_nvml import FakeNvml, load_machine
from algoperf.logs import events as ev
from algoperf.verification import signatures
from algoperf.verification.context import Options, Trial
from algoperf.verification.eventlog import scan
from algoperf.verification.findings import FAIL, NOTE, PASS, UNCERTIFIABLE
from algoperf.verification.keys import generate_keypair, load_signing_key, trusted_keys
from algoperf.verification.witness import Witness, open_witness, witness_files

STEP_SEC = 0.3


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys"))


def trial_dir(root: Path, trial: int) -> Path:
    return root / "exp" / "study_0" / "digits_pytorch" / f"trial_{trial}"


def write_trial(path: Path, middle=lambda log: None) -> None:
    """A short trial's events, STEP_SEC apart; ``middle`` writes more between them."""
    with ev.EventLog(path) as log:
        log.append(ev.RUN_START, {"workload": "digits", "study": 0})
        time.sleep(STEP_SEC)
        middle(log)
        log.append(ev.CHECKPOINT, {"global_step": 1})
        time.sleep(STEP_SEC)
        log.append(ev.RUN_END, {"status": "completed"})


def witnessed(root: Path, keys, trials: int = 1, middle=lambda log: None,
              samples: HostSamples | None = None, stop_sampling_early: bool = False):
    """Writes ``trials`` trials one after another while a witness with host samples watches
    ``root``; returns the signed witness records."""
    samples = samples or HostSamples(interval_sec=0.05)
    witness = Witness(root, poll_sec=0.01, rescan_sec=0.02, samples=samples).start()
    with samples:
        for trial in range(1, trials + 1):
            if stop_sampling_early:
                samples.stop()
            write_trial(trial_dir(root, trial), middle)
            time.sleep(STEP_SEC)
    witness.sign(load_signing_key(keys[0]))
    trusted = trusted_keys([keys[1]])
    return [open_witness(p.name, p.read_bytes(), trusted)
            for t in range(1, trials + 1) for p in witness_files(trial_dir(root, t))]


def samples_check(root: Path, trial: int, keys, **options):
    path = trial_dir(root, trial)
    t = Trial(root, path, scan(path / ev.EVENTS_FILENAME),
              Options(trusted=trusted_keys([keys[1]]), **options))
    return signatures.hardware_samples(t)


def test_runner_takes_no_samples_when_the_host_does(tmp_path, monkeypatch):
    with ev.EventLog(tmp_path) as log:
        monkeypatch.setenv(HOST_SAMPLES_ENV, "1")
        assert trial_sampler(log) is None
        monkeypatch.delenv(HOST_SAMPLES_ENV)
        sampler = trial_sampler(log)
        assert sampler is not None
        sampler.stop()
    types = [r["type"] for r in ev.read_events(tmp_path / ev.EVENTS_FILENAME)]
    assert types and set(types) == {ev.HARDWARE_SAMPLE}


def test_witness_signs_each_trial_the_host_samples_that_bracket_it(tmp_path, keys):
    first, second = witnessed(tmp_path, keys, trials=2)
    for record in (first, second):
        times = [s.t_mono for s in record.samples]
        assert times[0] <= record.observations[0].t_mono
        assert times[-1] >= record.observations[-1].t_mono - 0.1  # the final poll may follow
        assert record.sample_source["pid"] == os.getpid()
        assert record.sample_source["pid_namespace"] == os.readlink("/proc/self/ns/pid")
        assert all(s.data["gpus"] == {} and "cpu_freq_mhz" in s.data for s in record.samples)
    # The second trial's share starts after the first trial ended, not with the run.
    assert second.samples[0].t_mono > first.observations[-1].t_mono
    check = samples_check(tmp_path, 2, keys)
    assert check.status == PASS, check
    assert f"(pid {os.getpid()})" in check.summary and "no GPU samples" in check.summary


def test_a_sample_written_into_the_log_while_the_host_sampled_fails(tmp_path, keys):
    witnessed(tmp_path, keys, middle=lambda log: log.append(ev.HARDWARE_SAMPLE, {"gpus": {}}))
    check = samples_check(tmp_path, 1, keys)
    assert check.status == FAIL
    (problem,) = check.problems
    assert problem.line == 2 and "written inside the sandbox" in problem.reason


def test_host_samples_that_stop_before_the_trial_ends_are_not_certifiable(tmp_path, keys):
    witnessed(tmp_path, keys, stop_sampling_early=True)
    check = samples_check(tmp_path, 1, keys, witness_abs_tol=0.1)
    assert check.status == UNCERTIFIABLE
    assert "the host's samples end" in check.summary and "before line 3" in check.summary


def test_an_edited_host_sample_fails_the_signature(tmp_path, keys):
    witnessed(tmp_path, keys)
    (path,) = witness_files(trial_dir(tmp_path, 1))
    envelope = json.loads(path.read_bytes())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["hardware_samples"]["samples"][0][2]["cpu_freq_mhz"] = 1.0
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    path.write_text(json.dumps(envelope))
    check = samples_check(tmp_path, 1, keys)
    assert check.status == FAIL and "not trusted" in check.problems[0].reason


def test_a_run_that_sampled_itself_is_not_certifiable(tmp_path, keys):
    write_trial(trial_dir(tmp_path, 1), lambda log: log.append(ev.HARDWARE_SAMPLE, {}))
    check = samples_check(tmp_path, 1, keys)
    assert check.status == UNCERTIFIABLE
    assert "1 in events.jsonl, written by the run itself" in check.summary


def test_host_samples_only_the_containers_gpus_and_throttling_is_a_finding(tmp_path, keys):
    machine = load_machine("dgx1_v100x8")
    fake = FakeNvml(machine)
    fake.set_state(3, clock_event_reasons=pynvml.nvmlClocksEventReasonSwThermalSlowdown)
    uuids = (machine["gpus"][3]["uuid"], machine["gpus"][6]["uuid"])
    with use_nvml(fake):
        (record,) = witnessed(tmp_path, keys, samples=HostSamples(0.05, gpu_uuids=uuids))
    assert record.sample_source["gpu_uuids"] == list(uuids)
    assert all(len(s.data["gpus"]["sm_clock_mhz"]) == 2 for s in record.samples)
    assert record.samples[0].data["throttled"] == {"0": ["sw_thermal_slowdown"]}
    check = samples_check(tmp_path, 1, keys)
    assert check.status == NOTE and "THROTTLED" in check.summary
