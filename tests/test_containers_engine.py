"""Containers on a real Docker engine: base image, cpu image, verify-image, and `algoperf
docker run` of the digits workload end to end in the sandbox, then scored.

The base and the cpu image are built once per session and reused across sessions while their
inputs are unchanged (images are found by their input-digest label). Without an engine these
tests skip with the reason; under CI=true they fail instead (.ci/docker-up starts one).
Isolation is checked from inside by a probe submission that lists network interfaces and
tries a name look-up (no traffic leaves the machine: the sandbox has no route out).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from algoperf.containers import base, build, variants, verify
from algoperf.containers.sandbox import RUN_LABEL
from algoperf.logs.events import read_events

ROOT = Path(__file__).resolve().parent.parent
NADAMW = ROOT / "submissions" / "nadamw"
SIX = ("six==1.17.0 "
       "--hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274 "
       "--hash=sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81\n")


def algoperf(*args: str, env: dict | None = None, timeout: float = 600
             ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "algoperf", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def derived(client, image, *lines: str) -> str:
    """An image built FROM ``image`` with Dockerfile ``lines`` (labels inherited)."""
    dockerfile = "\n".join([f"FROM {image.id}", *lines]) + "\n"
    built, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True,
                                   network_mode="none")
    return built.id


def docker_run(image, submission, experiment_dir, *extra: str, env=None, **popen):
    args = ["docker", "run", "--image", image.id, "--submission", str(submission),
            "--workload", "digits", "--experiment-dir", str(experiment_dir), "--seed", "0",
            *extra]
    if popen:
        return subprocess.Popen([sys.executable, "-m", "algoperf", *args],
                                env={**os.environ, **(env or {})}, **popen)
    return algoperf(*args, env=env)


def test_base_image_has_python_311_and_recipe_label(client, base_image):
    out = client.containers.run(base_image.id, ["python3", "-c",
                                "import sys, venv; print(sys.version_info[:2])"],
                                remove=True, network_mode="none")
    assert out.decode().strip() == "(3, 11)"
    assert base_image.labels["org.algoperf.base-recipe"]


def test_a_multi_stage_build_leaves_no_untagged_stage_image_and_reports_each_step(
        client, base_image, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image.id} AS first\nRUN echo stage-one > /one\n"
        f"FROM first AS second\nRUN echo stage-two > /two\n"
        f"FROM {base_image.id}\nCOPY --from=second /two /two\n")
    dangling = {i.id for i in client.images.list(filters={"dangling": True})}
    said: list[str] = []
    image = build.stream_build(client, tmp_path, said.append, tag="algoperf-test:stages",
                               nocache=True)
    try:
        assert {i.id for i in client.images.list(filters={"dangling": True})} <= dangling
        assert image.tags == ["algoperf-test:stages"]
        started = [line for line in said if line.endswith("  ...")]  # each step as it starts
        assert len(started) == 6 and started[0].startswith("  Step 1/6 : FROM")
        assert "untagged stage image" in said[-1]
    finally:
        client.images.remove(image.id, force=True)


def test_image_is_labelled_with_lockfile_revision_and_variant(cpu_image):
    labels = cpu_image.labels
    lock = variants.get_variant("cpu").lockfile
    assert labels["org.algoperf.lockfile-sha256"] == verify.parse_lockfile(lock).sha256
    assert labels["org.algoperf.variant"] == "cpu"
    assert labels["org.algoperf.source-revision"] not in ("", "unknown")


def test_rebuild_with_unchanged_inputs_reuses_the_image(client, cpu_image):
    start = time.monotonic()
    again = build.build_image(client, variants.get_variant("cpu"), base_image=base.DEFAULT_TAG,
                              echo=lambda m: None)
    assert again.id == cpu_image.id
    assert time.monotonic() - start < 60


def test_cpu_image_matches_its_lockfile(cpu_image):
    result = algoperf("docker", "verify-image", cpu_image.id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "matches its lockfile" in result.stdout


def test_image_with_one_changed_file_fails_verify_image(client, cpu_image):
    site = "/opt/algoperf/lib/python3.11/site-packages"
    tampered = derived(client, cpu_image, "USER root",
                       f"RUN echo '# changed' >> {site}/optax/__init__.py", "USER algoperf")
    try:
        result = algoperf("docker", "verify-image", tampered)
    finally:
        client.images.remove(tampered, force=True, noprune=True)
    assert result.returncode == 1
    assert "changed lib/python3.11/site-packages/optax/__init__.py" in result.stdout
    assert "optax/__pycache__/__init__.cpython-311.pyc" in result.stdout  # byte code vs source
    assert "difference(s) from its lockfile" in result.stderr


def test_image_built_from_another_lockfile_is_one_line(client, cpu_image):
    other = derived(client, cpu_image, "LABEL org.algoperf.lockfile-sha256=" + "0" * 64)
    try:
        result = algoperf("docker", "verify-image", other)
    finally:
        client.images.remove(other, force=True, noprune=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: lockfile mismatch") and \
        result.stderr.count("\n") == 1


def test_digits_runs_end_to_end_in_the_sandbox_and_scores(cpu_image, tmp_path):
    result = docker_run(cpu_image, NADAMW / "submission_pytorch.py", tmp_path / "runs",
                        "--framework", "pytorch", "--tuning-search-space",
                        str(NADAMW / "tuning_search_space.json"), "--num-tuning-trials", "1",
                        "--max-global-steps", "300")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    host = tmp_path / "runs" / "nadamw"
    # The host's messages (stderr) name the host path, the container's as a note beside it;
    # the run inside the container (stdout) prints the host path too.
    assert f"logs on the host: {host} (in the container: /experiments/nadamw)" in result.stderr
    assert f"logs: {host}\n" in result.stdout and "/experiments" not in result.stdout
    trial = tmp_path / "runs" / "nadamw" / "study_0" / "digits_pytorch" / "trial_1"
    start = next(r for r in read_events(trial / "events.jsonl") if r["type"] == "run_start")
    assert start["data"]["image_digest"] == cpu_image.id
    assert start["data"]["lockfile_sha256"] == cpu_image.labels["org.algoperf.lockfile-sha256"]
    for path in (tmp_path / "runs").rglob("*"):
        assert path.stat().st_uid == os.getuid(), f"{path} does not belong to the caller"
    assert (trial / "eval_measurements.csv").is_file()
    scored = algoperf("score", str(tmp_path / "runs"))
    assert scored.returncode == 0, scored.stderr
    assert "nadamw" in scored.stdout


PROBE = '''
"""Reports what the sandbox lets a submission see and do, then stops its trial."""
import errno, json, os, socket

def _write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "written"
    except OSError as e:
        return errno.errorcode[e.errno]

def get_batch_size(workload_name):
    return 32

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    try:
        socket.getaddrinfo("example.com", 443)
        resolved = True
    except OSError:
        resolved = False
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status")
                  if ":\\t" in line)
    report = {
        "interfaces": sorted(os.listdir("/sys/class/net")),
        "resolved": resolved,
        "uid": os.getuid(), "euid": os.geteuid(),
        "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
        "data": _write("/data/probe"), "submission": _write("/submission/probe/probe"),
        "root": _write("/probe"), "venv": _write("/opt/algoperf/probe"),
        "tmp": _write("/tmp/probe"),
        "env": sorted(os.environ),
    }
    print("PROBE " + json.dumps(report), flush=True)
    raise RuntimeError("probe done")

def update_params(*args, **kwargs):
    raise RuntimeError("unused")

def data_selection(*args, **kwargs):
    raise RuntimeError("unused")
'''


def test_submission_sees_only_loopback_and_cannot_write_its_inputs(cpu_image, tmp_path):
    submission = tmp_path / "probe"
    submission.mkdir()
    (submission / "submission.py").write_text(PROBE)
    data = tmp_path / "data"
    data.mkdir()
    result = docker_run(cpu_image, submission, tmp_path / "runs", "--framework", "pytorch",
                        "--tuning-ruleset", "self", "--data-dir", str(data),
                        env={"ALGOPERF_TEST_HOST_SECRET": "must-not-leak"})
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("PROBE ")), None)
    assert line is not None, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(line[len("PROBE "):])
    assert report["interfaces"] == ["lo"]
    assert report["resolved"] is False
    assert report["uid"] != 0 and report["euid"] != 0
    assert report["cap_eff"] == "0000000000000000" and report["no_new_privs"] == "1"
    assert report["data"] == report["submission"] == report["root"] == "EROFS"
    assert report["venv"] == "EROFS" and report["tmp"] == "written"
    assert "ALGOPERF_TEST_HOST_SECRET" not in report["env"]
    assert {"ALGOPERF_IMAGE_ID", "ALGOPERF_LOCKFILE_SHA256"} <= set(report["env"])
    assert not (data / "probe").exists() and not (submission / "probe").exists()
    assert result.returncode == 1  # the probe fails its trial on purpose


def test_ctrl_c_stops_the_container_cleanly(client, cpu_image, tmp_path):
    space = tmp_path / "slow_space.json"  # a learning rate that never reaches the target
    space.write_text(json.dumps({"learning_rate": {"feasible_points": [1e-9]},
                                 "one_minus_beta1": {"feasible_points": [0.1]},
                                 "beta2": {"feasible_points": [0.999]},
                                 "warmup_factor": {"feasible_points": [0.05]},
                                 "weight_decay": {"feasible_points": [0.0]},
                                 "label_smoothing": {"feasible_points": [0.0]},
                                 "dropout_rate": {"feasible_points": [0.0]}}))
    proc = docker_run(cpu_image, NADAMW / "submission_jax.py", tmp_path / "runs",
                      "--framework", "jax", "--tuning-search-space", str(space),
                      "--num-tuning-trials", "1", stdout=subprocess.DEVNULL,
                      stderr=subprocess.PIPE)
    events = tmp_path / "runs" / "nadamw" / "study_0" / "digits_jax" / "trial_1" / \
        "events.jsonl"
    deadline = time.monotonic() + 120
    while not (events.exists() and any(r["type"] == "eval" for r in read_events(events))):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the run never evaluated"
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    assert code == 130, proc.stderr.read().decode()[-2000:]
    assert not client.containers.list(all=True, filters={"label": RUN_LABEL})
    assert [r["seq"] for r in read_events(events)] == list(range(len(read_events(events))))


def test_submission_image_holds_its_locked_packages(client, cpu_image, tmp_path):
    submission = tmp_path / "with_six"
    submission.mkdir()
    (submission / "requirements.txt").write_text(SIX)
    image = build.build_submission_image(client, cpu_image, submission, echo=lambda m: None)
    out = client.containers.run(image.id, ["-c", "import six; print(six.__version__)"],
                                entrypoint=["/opt/algoperf/bin/python"], remove=True,
                                network_mode="none")
    assert out.decode().strip() == "1.17.0"
    assert image.labels["org.algoperf.submission-lock-sha256"]


def test_bad_input_is_one_line(cpu_image, tmp_path):
    cases = [
        (["docker", "verify-image", "algoperf:no-such-tag"], "is not on this engine"),
        (["docker", "build", "--variant", "gpu"], "unknown image variant 'gpu'"),
        (["docker", "run", "--image", cpu_image.id, "--submission", str(NADAMW),
          "--workload", "digits", "--framework", "jax", "--tuning-ruleset", "self",
          "--experiment-dir", str(tmp_path), "--data-dir", str(tmp_path / "missing")],
         "does not exist"),
    ]
    for args, message in cases:
        result = algoperf(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_wrong_hardware_is_refused_on_the_host_before_any_container(client, cpu_image,
                                                                     tmp_path):
    result = docker_run(cpu_image, NADAMW / "submission_pytorch.py", tmp_path / "exp",
                        "--framework", "pytorch", "--tuning-search-space",
                        str(NADAMW / "tuning_search_space.json"), "--num-tuning-trials", "1",
                        "--reference", "v100x8-v0.6")
    assert result.returncode == 2, result.stderr
    assert "v100x8-v0.6" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "exp").exists()
    # No container was ever made for this run (they carry their run folder as a label).
    labels = [c.labels for c in client.containers.list(all=True)]
    assert not any(str(tmp_path) in value for lab in labels for value in lab.values())


def test_no_engine_says_how_to_start_one(tmp_path):
    result = algoperf("docker", "verify-image", "algoperf:cpu",
                      env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert result.returncode == 2
    assert "no Docker engine" in result.stderr and "dockerd" in result.stderr
    assert result.stderr.count("\n") == 1
