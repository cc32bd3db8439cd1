"""Containers without an engine: lockfiles against pyproject, the sandbox's settings, the
container's `algoperf run` arguments, and the file comparison verify-image relies on."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import zipfile
from pathlib import Path

import docker
import pytest

from algoperf.containers import lockfiles, variants, verify
from algoperf.containers.docker_run import plan_container
from algoperf.containers.sandbox import BindMount, Sandbox, container_settings
from algoperf.errors import UserError
from algoperf.run_command import run as run_command
from algoperf.run_options import config_from_options

ROOT = Path(__file__).resolve().parent.parent
SUBMISSION = ROOT / "submissions" / "nadamw"


@pytest.mark.parametrize("name", ["cpu", "jax-cuda", "pytorch-cuda"])
def test_committed_lockfiles_match_pyproject(name):
    variant = variants.get_variant(name)
    assert lockfiles.drift(variant) == [], "run `algoperf env lock` after changing pyproject"


def test_every_locked_package_is_pinned_with_hashes():
    for variant in variants.all_variants().values():
        lock = lockfiles.parse_lockfile(variant.lockfile)
        assert lock.entries
        assert all(e.hashes and all(len(h) == 64 for h in e.hashes) for e in lock.entries)


def test_cpu_variant_locks_pytorch_cpu_build_and_cuda_variant_the_gpu_builds():
    cpu = lockfiles.parse_lockfile(variants.get_variant("cpu").lockfile).installed()
    jax_cuda = lockfiles.parse_lockfile(variants.get_variant("jax-cuda").lockfile).installed()
    torch_cuda = lockfiles.parse_lockfile(
        variants.get_variant("pytorch-cuda").lockfile).installed()
    assert cpu["torch"].version.endswith("+cpu")
    assert not any(name.startswith("nvidia-cu") for name in cpu)
    assert "jax-cuda12-plugin" in jax_cuda and jax_cuda["torch"].version.endswith("+cpu")
    assert "+" not in torch_cuda["torch"].version and "jax-cuda12-plugin" not in torch_cuda


def test_cuda_images_lock_the_framework_versions_algoperfs_current_rules_pin():
    jax_cuda = lockfiles.parse_lockfile(variants.get_variant("jax-cuda").lockfile).installed()
    torch_cuda = lockfiles.parse_lockfile(
        variants.get_variant("pytorch-cuda").lockfile).installed()
    for name, version in (("jax", "0.7.0"), ("jax-cuda12-plugin", "0.7.0"), ("flax", "0.10.7"),
                          ("optax", "0.2.2")):
        assert jax_cuda[name].version == version, name
    assert torch_cuda["torch"].version == "2.5.1"


def test_drift_names_requirement_added_to_pyproject():
    variant = variants.get_variant("cpu")
    changed = dataclasses.replace(variant, requirements=variant.requirements + ("six>=1.16",))
    problems = lockfiles.drift(changed)
    assert any("'six>=1.16'" in p and "not in the lock" in p for p in problems)
    assert any("six is required but not locked" in p for p in problems)


def test_drift_names_pin_that_no_longer_satisfies_pyproject():
    variant = variants.get_variant("cpu")
    reqs = tuple("numpy>=99" if r.startswith("numpy") else r for r in variant.requirements)
    problems = lockfiles.drift(dataclasses.replace(variant, requirements=reqs))
    assert any("numpy==" in p and "requires >=99" in p for p in problems)


def test_unknown_variant_is_one_line_with_suggestion():
    with pytest.raises(UserError, match=r"unknown image variant 'cpus'; did you mean 'cpu'"):
        variants.get_variant("cpus")


def test_lockfile_line_without_hash_is_rejected(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("six==1.17.0\n")
    with pytest.raises(UserError, match="not pinned with == and --hash"):
        lockfiles.parse_lockfile(path)


def test_sandbox_settings_isolate_the_run(tmp_path):
    sandbox = Sandbox(image_id="sha256:abc", command=("run",), user="1000:1000",
                      mounts=(BindMount(tmp_path / "data", "/data"),
                              BindMount(tmp_path / "out", "/experiments/x", read_only=False)),
                      environment={"ALGOPERF_IMAGE_ID": "sha256:abc"}, memory="8g", cpus=1.5,
                      gpu_uuids=("GPU-1234",))
    s = container_settings(sandbox)
    assert s["network_mode"] == "none" and s["read_only"] is True
    assert s["cap_drop"] == ["ALL"] and s["security_opt"] == ["no-new-privileges:true"]
    assert s["ipc_mode"] == "private" and s["shm_size"] == "2g" and s["pids_limit"] == 4096
    assert s["tmpfs"] == {"/tmp": "rw,exec,nosuid,nodev,size=4g"}
    assert s["environment"] == {"ALGOPERF_IMAGE_ID": "sha256:abc"}
    assert s["mem_limit"] == s["memswap_limit"] == "8g" and s["nano_cpus"] == 1_500_000_000
    assert [(m["Target"], m["ReadOnly"]) for m in s["mounts"]] == [
        ("/data", True), ("/experiments/x", False)]
    host_config = docker.APIClient(version="1.41").create_host_config(
        device_requests=s["device_requests"])
    assert host_config["DeviceRequests"][0]["DeviceIDs"] == ["GPU-1234"]


def test_sandbox_refuses_root_and_second_writable_mount(tmp_path):
    with pytest.raises(ValueError, match="root"):
        container_settings(Sandbox("i", ("run",), (), "0:0", {}))
    writable = tuple(BindMount(tmp_path / n, f"/{n}", read_only=False) for n in "ab")
    with pytest.raises(ValueError, match="one writable mount"):
        container_settings(Sandbox("i", ("run",), writable, "1000:1000", {}))


def _run_values(args: list[str]) -> dict:
    return run_command.make_context("run", args).params


def test_container_arguments_are_algoperf_run_options_with_paths_inside(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not inside a repository root that holds the submission
    data = tmp_path / "data"
    data.mkdir()
    values = _run_values([
        "--submission", str(SUBMISSION / "submission_pytorch.py"), "--workload", "digits",
        "--framework", "pytorch", "--experiment-dir", str(tmp_path / "runs"),
        "--tuning-search-space", str(SUBMISSION / "tuning_search_space.json"),
        "--data-dir", str(data), "--seed", "3", "--no-save-checkpoints", "--overwrite"])
    config = config_from_options(**dict(values))
    plan = plan_container(config, values, data_dir_given=True)
    inside = _run_values(list(plan.run_args))
    assert inside["submission_path"] == Path("/submission/nadamw/submission_pytorch.py")
    assert inside["tuning_search_space"] == Path("/submission/nadamw/tuning_search_space.json")
    assert inside["data_dir"] == Path("/data") and inside["experiment_dir"] == Path("/experiments")
    assert inside["experiment_name"] == "nadamw"
    assert inside["seed"] == 3 and inside["save_checkpoints"] is False and inside["overwrite"]
    assert {k: v for k, v in inside.items() if k not in (
        "submission_path", "tuning_search_space", "data_dir", "experiment_dir",
        "experiment_name")} == {k: v for k, v in values.items() if k not in (
        "submission_path", "tuning_search_space", "data_dir", "experiment_dir",
        "experiment_name")}
    writable = [m for m in plan.mounts if not m.read_only]
    assert writable == [BindMount(tmp_path / "runs" / "nadamw", "/experiments/nadamw", False)]
    assert BindMount(SUBMISSION, "/submission/nadamw") in plan.mounts


def test_missing_data_dir_given_explicitly_is_one_line(tmp_path):
    values = _run_values(["--submission", str(SUBMISSION), "--workload", "digits",
                          "--framework", "jax", "--experiment-dir", str(tmp_path),
                          "--data-dir", str(tmp_path / "nowhere")])
    with pytest.raises(UserError, match=r"data dir .*nowhere does not exist"):
        plan_container(config_from_options(**dict(values)), values, data_dir_given=True)


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    """A real wheel holding ``files`` and a RECORD with their hashes."""
    rows = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{name},sha256={digest},{len(data)}")
    rows.append("demo-1.0.dist-info/RECORD,,")
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("demo-1.0.dist-info/RECORD", "\n".join(rows) + "\n")
    return path


def test_compare_reports_changed_missing_and_unexpected_files(tmp_path):
    site = "lib/python3.11/site-packages/"
    wheel = _wheel(tmp_path / "demo-1.0-py3-none-any.whl", {
        "demo/__init__.py": b"x = 1\n", "demo/util.py": b"y = 2\n",
        "demo-1.0.dist-info/METADATA": b"Name: demo\n"})
    sha = {n: hashlib.sha256(d).hexdigest() for n, d in
           {"init": b"x = 1\n", "meta": b"Name: demo\n", "evil": b"z\n"}.items()}
    installed = verify.Installed({
        f"{site}demo/__init__.py": hashlib.sha256(b"x = 2\n").hexdigest(),  # changed
        f"{site}demo-1.0.dist-info/METADATA": sha["meta"],
        f"{site}demo-1.0.dist-info/RECORD": "0" * 64,
        f"{site}demo/__pycache__/__init__.cpython-311.pyc": "1" * 64,
        f"{site}evil.pth": sha["evil"],  # unexpected
        "pyvenv.cfg": "2" * 64})
    records = {f"{site}demo-1.0.dist-info/RECORD": b""}
    problems = verify.compare(installed, records, {"demo": wheel}, site, {"pyvenv.cfg"}, "env")
    assert problems == [
        f"env: changed {site}demo/__init__.py (sha256 "
        f"{installed.files[site + 'demo/__init__.py'][:12]}, locked {sha['init'][:12]})",
        f"env: missing {site}demo/util.py",
        f"env: unexpected file {site}evil.pth",
    ]


def test_container_plan_hands_over_only_the_trial_folders_the_run_writes(tmp_path):
    """A sweep job (one study, one trial) owns one trial folder; the study and workload
    folders above it are shared with its sibling jobs and are not the job's to hand over."""
    common = ["--submission", str(SUBMISSION / "submission_pytorch.py"), "--workload",
              "digits", "--framework", "pytorch", "--experiment-dir", str(tmp_path),
              "--tuning-search-space", str(SUBMISSION / "tuning_search_space.json")]
    job = _run_values([*common, "--study", "1", "--num-studies", "2", "--num-tuning-trials",
                       "4", "--hparam-start-index", "2", "--hparam-end-index", "3", "--resume"])
    plan = plan_container(config_from_options(**dict(job)), job, data_dir_given=False)
    workload = tmp_path / "nadamw" / "study_1" / "digits_pytorch"
    assert plan.trial_dirs == (workload / "trial_3",)
    whole = _run_values([*common, "--num-studies", "2", "--num-tuning-trials", "2"])
    plan = plan_container(config_from_options(**dict(whole)), whole, data_dir_given=False)
    assert plan.trial_dirs == tuple(tmp_path / "nadamw" / f"study_{k}" / "digits_pytorch" /
                                    f"trial_{i}" for k in (0, 1) for i in (1, 2))
