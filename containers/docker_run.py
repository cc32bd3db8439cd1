"""``algoperf docker run``: `algoperf run` inside the sandbox, orchestrated from the host.

The orchestration is a sequence of small steps (see `docker_run`): connect, plan the run on
the host, check the image against its lockfile, lay out the mounts and the container's
arguments, pick the unprivileged user, start the container, stream its output until it exits,
and clean up. Hardware-profile enforcement and a live witness of ``events.jsonl`` slot in as
further steps between these. The hardware samples of the run are taken here, on the host
(`algoperf.hardware.HostSamples`), for as long as the container lives; the runner inside is
told to take none, and the witness signs the host's samples into its records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container
from docker.models.images import Image

from algoperf import hardware, runner, submission_check
from algoperf.containers import build, engine, verify
from algoperf.containers.sandbox import BindMount, Sandbox, container_settings
from algoperf.errors import UserError
from algoperf.run_options import to_arguments
from algoperf.submission import JOB_ENVIRONMENT, submission_root

DATA = "/data"
IMAGENET_V2 = "/data-imagenet-v2"
SUBMISSION = "/submission"
SEARCH_SPACE = "/inputs/tuning_search_space.json"
EXPERIMENTS = "/experiments"
# Tells `algoperf run` in the container where its logs are on the host, to print that path.
HOST_RUN_DIR_ENV = "ALGOPERF_HOST_RUN_DIR"
STOP_GRACE_SEC = 30


@dataclasses.dataclass(frozen=True)
class DockerOptions:
    """The options `algoperf docker run` adds to those of `algoperf run`."""

    image: str
    memory: str | None = None
    cpus: float | None = None
    pids_limit: int = 4096
    shm_size: str = "2g"
    tmp_size: str = "4g"
    gpus: str = "auto"  # "auto", "none" or comma-separated GPU UUIDs
    signing_key: Path | None = None  # the organizer's key: witness, sign and seal the run
    check: bool = True  # check the submission against AlgoPerf's rules first (algoperf check)


@dataclasses.dataclass(frozen=True)
class ContainerPlan:
    """Where the run's inputs and outputs go, and the `algoperf run` arguments inside."""

    mounts: tuple[BindMount, ...]
    run_args: tuple[str, ...]
    run_dir: Path  # on the host: <experiment-dir>/<experiment-name>
    trial_dirs: tuple[Path, ...]  # on the host: the <study>/<workload>_<framework>/trial_<i>
    host_config: Any = None  # the run's RunConfig with its folders as on the host


def plan_run(run_options: dict[str, Any], debug: bool):
    """The run as `algoperf run` would see it on the host, checked before anything starts."""
    from algoperf.run_options import config_from_options
    from algoperf.runner import check_resume, validate

    config = config_from_options(debug=debug, **dict(run_options))
    validate(config)
    if config.resume:  # a resume that differs from how the run started: refused on the host
        check_resume(config)
    return config


def check_image(client: docker.DockerClient, image: Image, submission_dir: Path | None,
                echo: Callable[[str], None]) -> str:
    """The image's lockfile hash, once the image is known to match its lockfile (checked in
    full the first time an image id is seen, remembered after)."""
    lockfile = build.locked_for(image)
    if not verify.already_verified(image):
        echo(f"verifying image {image.short_id} against {lockfile.path.name} (once per image)")
        problems = verify.verify_image(client, image, submission_dir, echo=echo)
        if problems:
            raise UserError(f"image {image.short_id} does not match its lockfile "
                            f"({len(problems)} differences, first: {problems[0]}); run "
                            "`algoperf docker verify-image` for all, and rebuild")
    return lockfile.sha256


def _existing(path: Path, what: str, option: str) -> Path:
    path = path.expanduser().resolve()
    if not path.exists():
        raise UserError(f"{what} {path} does not exist; check {option}")
    return path


def plan_container(config, run_options: dict[str, Any], data_dir_given: bool) -> ContainerPlan:
    """Mounts (inputs read-only, the run folder writable) and the container's arguments."""
    mounts = []
    submission = _existing(config.submission_path, "submission", "--submission")
    folder = submission if submission.is_dir() else submission.parent
    # Under its own name, so that names derived from the path are the same inside.
    folder_inside = f"{SUBMISSION}/{folder.name}"
    inside = {"submission_root": None}  # none inside unless the folder sits below a root
    root = submission_root(submission, config.submission_root)
    if root is not None and root != folder:
        # At its path in the repository, under /submission standing in for the root: its
        # modules import by repository path (submissions.<ruleset>.<name>.helper) as on the
        # host, and the sandbox still sees only the submission's folder.
        folder_inside = f"{SUBMISSION}/{folder.relative_to(root)}"
        inside["submission_root"] = SUBMISSION
    mounts.append(BindMount(folder, folder_inside))
    inside["submission_path"] = (folder_inside if submission.is_dir()
                                 else f"{folder_inside}/{submission.name}")
    if config.tuning_search_space is not None:
        space = _existing(config.tuning_search_space, "search space", "--tuning-search-space")
        if space.is_relative_to(folder):
            inside["tuning_search_space"] = f"{folder_inside}/{space.relative_to(folder)}"
        else:
            mounts.append(BindMount(space, SEARCH_SPACE))
            inside["tuning_search_space"] = SEARCH_SPACE
    data_dir = config.data_dir.expanduser().resolve()
    if data_dir.exists():
        mounts.append(BindMount(data_dir, DATA))
    elif data_dir_given:
        raise UserError(f"data dir {data_dir} does not exist; prepare the dataset there or "
                        "pass the right --data-dir")
    inside["data_dir"] = DATA
    if config.imagenet_v2_data_dir is not None:
        mounts.append(BindMount(_existing(config.imagenet_v2_data_dir, "data dir",
                                          "--imagenet-v2-data-dir"), IMAGENET_V2))
        inside["imagenet_v2_data_dir"] = IMAGENET_V2
    run_dir = config.experiment_dir.expanduser().resolve() / config.experiment_name
    run_dir.mkdir(parents=True, exist_ok=True)
    mounts.append(BindMount(run_dir, f"{EXPERIMENTS}/{config.experiment_name}",
                            read_only=False))
    inside["experiment_dir"] = EXPERIMENTS
    inside["experiment_name"] = config.experiment_name
    host_config = dataclasses.replace(config, experiment_dir=run_dir.parent)
    return ContainerPlan(tuple(mounts), tuple(to_arguments({**run_options, **inside})),
                         run_dir, tuple(runner.trial_dirs(host_config)), host_config)


def sandbox_user(image: Image) -> tuple[int, int]:
    """The caller's uid:gid, or the image's unprivileged user when the caller is root."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    uid = int((image.labels or {}).get(build.LABEL + "user-uid", build.DEFAULT_UID))
    return uid, uid


def hand_over(path: Path, uid: int, gid: int) -> None:
    """Gives ``path`` and everything under it to uid:gid (only root calls this)."""
    os.chown(path, uid, gid)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


def hand_over_trials(plan: ContainerPlan, uid: int, gid: int) -> None:
    """Lays out the run's folders for a sandbox user other than the caller (root): only the
    run's own trial folders are handed to it. The folders above them -- the experiment,
    study and workload folders, which parallel runs (a sweep's sibling trials) share -- are
    created once, stay the caller's and never change hands, so no run ever takes away files
    another run is writing. The refusal to reuse a folder, and --overwrite, happen here on
    the host: the sandbox user may not empty folders it does not own."""
    runner.prepare_dirs(plan.host_config)
    for folder in plan.trial_dirs:
        folder.mkdir(parents=True, exist_ok=True)
        hand_over(folder, uid, gid)


def hand_back_trials(plan: ContainerPlan, uid: int, gid: int) -> None:
    """Gives the run's trial folders back to the caller; removes those left empty (trials
    the run never got to), so they do not look like started trials."""
    for folder in plan.trial_dirs:
        if not folder.is_dir():
            continue
        hand_over(folder, uid, gid)
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty


def gpu_uuids(choice: str, image: Image) -> tuple[str, ...]:
    """GPUs to request: the listed UUIDs, none, or (auto) every GPU nvidia-smi lists when the
    image is a CUDA variant."""
    if choice == "none":
        return ()
    if choice != "auto":
        return tuple(u.strip() for u in choice.split(",") if u.strip())
    if not (image.labels or {}).get(build.LABEL + "variant", "").endswith("-cuda"):
        return ()
    if shutil.which("nvidia-smi") is None:
        return ()
    proc = subprocess.run(["nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader"],
                          capture_output=True, text=True)
    return tuple(line.strip() for line in proc.stdout.splitlines()
                 if line.strip().startswith("GPU-")) if proc.returncode == 0 else ()


def start(client: docker.DockerClient, sandbox: Sandbox):
    """Creates the container, attaches to its output, starts it; returns both."""
    try:
        container = client.containers.create(**container_settings(sandbox))
    except docker.errors.APIError as e:
        raise UserError(f"the engine refused the container: {e.explanation or e}") from None
    stream = client.api.attach(container.id, stdout=True, stderr=True, stream=True, logs=True,
                               demux=True)
    container.start()
    return container, stream


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a sweep stopping its jobs, a scheduler) stops the run like Ctrl-C does, so
    the container is stopped and removed and the run's folders are handed back; the
    default action would leave the container running with nobody watching it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stream_until_exit(container: Container, stream) -> int:
    """Copies the container's output live to ours and returns its exit status. Ctrl-C
    interrupts the run inside (SIGINT, as on the host), then kills it after a grace period."""
    try:
        for out, err in stream:
            if out:
                sys.stdout.buffer.write(out)
                sys.stdout.flush()
            if err:
                sys.stderr.buffer.write(err)
                sys.stderr.flush()
        return int(container.wait()["StatusCode"])
    except KeyboardInterrupt:
        return stop(container)


def stop(container: Container) -> int:
    """Stops a running container: SIGINT, then SIGKILL after STOP_GRACE_SEC."""
    try:
        container.kill(signal="SIGINT")
        return int(container.wait(timeout=STOP_GRACE_SEC)["StatusCode"]) or 130
    except KeyboardInterrupt:
        pass
    except docker.errors.APIError:
        return 130
    except Exception:  # noqa: BLE001 - a wait that timed out; the container must go
        pass
    container.kill()
    return 130


def _signing(docker_options: DockerOptions, plan: ContainerPlan, config, image: Image,
             lockfile_sha: str, samples: hardware.HostSamples, echo: Callable[[str], None]):
    """With the organizer's key: the host witnesses the run live, then signs and seals each
    trial with the host's hardware samples (algoperf.verification.signing); without one, the
    run is unsigned and the samples are only summarised."""
    if docker_options.signing_key is None:
        echo("unsigned run: pass --signing-key (the organizer's key) to witness and seal it "
             "and keep the host's hardware samples")
        return contextlib.nullcontext()
    from algoperf.verification.signing import run_facts, signed_run

    facts = run_facts(image.id, lockfile_sha, config.submission_path, config.framework,
                      config.data_dir, config.workload)
    return signed_run(docker_options.signing_key, plan.run_dir,
                      [m.source for m in plan.mounts], facts, echo, samples)


def host_samples_line(samples: hardware.HostSamples) -> str:
    """What the host's samples of the run say (the line `algoperf run` prints otherwise)."""
    summary = hardware.throttle_summary(samples.records).text()
    return f"hardware samples, taken on the host (pid {samples.source['pid']}): {summary}"


def docker_run(run_options: dict[str, Any], docker_options: DockerOptions, debug: bool = False,
               data_dir_given: bool = False, echo: Callable[[str], None] = print) -> int:
    """Runs `algoperf run` with ``run_options`` in the sandbox; returns its exit status."""
    config = plan_run(run_options, debug)
    if docker_options.check:  # on the host, before the engine is even asked; violations
        # refuse, warnings are `algoperf check`'s to show (bad input stays one line)
        submission_check.enforce(config.submission_path, config.framework,
                                 ruleset=config.ruleset, rules=config.rules,
                                 search_space=config.tuning_search_space)
    client = engine.connect()
    if config.reference is not None:
        # On the host, before any container starts: the container sees only what it is given.
        hardware.check_reference(config.reference, config.allow_nonreference, config.rules)
    image = engine.get_image(client, docker_options.image)
    submission_dir = config.submission_path if Path(config.submission_path).is_dir() else \
        Path(config.submission_path).parent
    lockfile_sha = check_image(client, image, submission_dir, echo)
    plan = plan_container(config, run_options, data_dir_given)
    uid, gid = sandbox_user(image)
    caller = (os.getuid(), os.getgid())
    if caller[0] == 0:
        hand_over_trials(plan, uid, gid)
    gpus = gpu_uuids(docker_options.gpus, image)
    samples = hardware.HostSamples(gpu_uuids=gpus)  # the container's GPUs, from the host
    sandbox = Sandbox(
        image_id=image.id,
        command=(("--debug",) if debug else ()) + ("run",) + plan.run_args,
        mounts=plan.mounts, user=f"{uid}:{gid}",
        environment={"ALGOPERF_IMAGE_ID": image.id, "ALGOPERF_LOCKFILE_SHA256": lockfile_sha,
                     "ALGOPERF_SANDBOX": "1", HOST_RUN_DIR_ENV: str(plan.run_dir),
                     hardware.HOST_SAMPLES_ENV: "1", **JOB_ENVIRONMENT},
        pids_limit=docker_options.pids_limit, shm_size=docker_options.shm_size,
        tmp_size=docker_options.tmp_size, memory=docker_options.memory,
        cpus=docker_options.cpus, gpu_uuids=gpus,
        tty=sys.stdout.isatty() and sys.stderr.isatty(),
        labels={build.LABEL + "run-dir": str(plan.run_dir)})
    container = None
    try:
        # Exits in reverse: the sampler takes its last sample, then the witness signs.
        with sigterm_as_interrupt(), _signing(docker_options, plan, config, image,
                                              lockfile_sha, samples, echo), samples:
            echo(f"logs on the host: {plan.run_dir} (in the container: {EXPERIMENTS}/"
                 f"{config.experiment_name})")
            container, stream = start(client, sandbox)
            code = stream_until_exit(container, stream)
        echo(host_samples_line(samples))
        echo(f"logs on the host: {plan.run_dir}")
        return code
    finally:
        if container is not None:
            container.remove(force=True)
        if caller[0] == 0:
            hand_back_trials(plan, *caller)
