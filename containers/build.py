"""``algoperf docker build``: the image of a variant, from its lockfile and no network.

Steps: read the lockfile; make sure the wheelhouse holds a wheel matching each entry's hashes;
build the project's wheel; stage a build context with exactly those files and the Dockerfile;
skip the build when an image of the same inputs exists; else build with the engine's legacy
builder (network "none") and label the image with what went in.

A submission's own packages go into a derived image (`build_submission_image`): the
submission's ``requirements.txt`` must pin every package with ``==`` and ``--hash``; they are
installed at build time into ``/opt/submission-deps``, so nothing is pip-installed when a run
starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
from docker.models.images import Image

from algoperf.containers import engine, source, wheelhouse
from algoperf.containers.lockfiles import Lockfile, parse_lockfile
from algoperf.containers.variants import Variant
from algoperf.errors import UserError
from algoperf.hashing import file_sha256

LABEL = "org.algoperf."
DEFAULT_UID = 1000  # the image's unprivileged user `algoperf`
SUBMISSION_REQUIREMENTS = "requirements.txt"
# Labels are applied in key order after the Dockerfile's steps; this one comes last.
LAST_LABEL = "LABEL org.opencontainers.image.revision="


def default_tag(variant: str) -> str:
    return f"algoperf:{variant}"


def dockerfile_default_base(dockerfile: Path) -> str:
    """The base image the Dockerfile pins (its ``ARG BASE_IMAGE=`` default)."""
    for line in dockerfile.read_text().splitlines():
        if line.startswith("ARG BASE_IMAGE="):
            return line.split("=", 1)[1].strip()
    raise UserError(f"{dockerfile} has no `ARG BASE_IMAGE=` line; restore it")


def resolve_base(client: docker.DockerClient, ref: str) -> Image:
    """The base image ``ref``, pulled if the engine reaches a registry that has it."""
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        pass
    try:
        return client.images.pull(ref)
    except docker.errors.DockerException as e:
        reason = str(getattr(e, "explanation", None) or e).splitlines()[0][:160]
        raise UserError(
            f"base image {ref} is not on this engine and cannot be pulled ({reason}); build a "
            "local one with `algoperf docker base` and pass --base-image algoperf/base:bookworm"
        ) from None


def _link(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _digest(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


HEARTBEAT_SEC = 30.0  # a step that runs longer says so this often
_STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12,64})$")


def stream_build(client: docker.DockerClient, context: Path, echo: Callable[[str], None],
                 **kwargs) -> Image:
    """Runs the legacy builder on ``context``, echoing each step as it starts and ends (with
    its duration, and every `HEARTBEAT_SEC` while it runs); returns the image or raises one
    line naming the failed step. The untagged images of the earlier stages of a multi-stage
    build are removed afterwards (`_remove_stage_images`), so no build leaves gigabytes of
    ``<none>`` images behind."""
    step, started, image_id, tail, produced = "", time.monotonic(), None, [], []
    t0 = started
    beat = _Heartbeat(echo)
    try:
        for chunk in client.api.build(path=str(context), rm=True, forcerm=True, decode=True,
                                      network_mode="none", **kwargs):
            if "error" in chunk:
                detail = " | ".join(line for line in tail[-2:] if line)[:300]
                where = step[:60] + ("..." if len(step) > 60 else "") if step else "the start"
                error = chunk["error"].strip().splitlines()[-1][-200:]
                raise UserError(f"image build failed at {where}: {error}"
                                + (f" (last output: {detail})" if detail else ""))
            text = chunk.get("stream", "")
            if text.startswith("Step "):
                now = time.monotonic()
                if step:
                    echo(f"  {step[:90]}  [{now - started:.1f}s]")
                step, started, tail = text.strip(), now, []
                beat.step(step)
            elif found := _STEP_IMAGE.match(text.rstrip("\n")):
                produced.append(found.group(1))
            elif text.strip():
                tail.append(text.strip()[:200])
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    finally:
        beat.stop()
    if step:
        echo(f"  {step[:90]}  [{time.monotonic() - started:.1f}s]")
    if image_id is None:
        raise UserError("the engine finished the build without an image id; see `docker "
                        "images` and rerun with --no-cache")
    removed = _remove_stage_images(client, produced)
    echo(f"built in {time.monotonic() - t0:.1f}s"
         + (f" (removed {removed} untagged stage image(s))" if removed else ""))
    return client.images.get(image_id)


class _Heartbeat:
    """Says which step is still running, every `HEARTBEAT_SEC`, from a daemon thread."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self._echo, self._step, self._since = echo, "", time.monotonic()
        self._done = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True, name="build-heartbeat").start()

    def step(self, step: str) -> None:
        with self._lock:
            self._step, self._since = step, time.monotonic()
        self._echo(f"  {step[:90]}  ...")

    def stop(self) -> None:
        self._done.set()

    def _run(self) -> None:
        while not self._done.wait(HEARTBEAT_SEC):
            with self._lock:
                step, since = self._step, self._since
            if step and time.monotonic() - since >= HEARTBEAT_SEC:
                self._echo(f"  still at {step[:70]}  [{time.monotonic() - since:.0f}s]")


def _remove_stage_images(client: docker.DockerClient, produced: list[str]) -> int:
    """Removes the untagged, childless images among a build's step images (the ends of its
    earlier stages, with their untagged parents); the final image's ancestors have children
    and stay. Returns how many were removed."""
    removed = 0
    for image_id in reversed(produced):
        try:
            image = client.images.get(image_id)
            if image.tags:
                continue
            client.images.remove(image.id)
            removed += 1
        except docker.errors.APIError:  # in use: an ancestor of the result, or gone
            continue
    return removed


def build_image(client: docker.DockerClient, variant: Variant, base_image: str | None = None,
                tag: str | None = None, find_links: tuple[str, ...] = (),
                no_cache: bool = False, echo: Callable[[str], None] = print) -> Image:
    """The image of ``variant``; an existing one is reused when every input is unchanged."""
    root = source.source_root()
    dockerfile = source.dockerfile()
    lockfile = parse_lockfile(variant.lockfile)
    base = resolve_base(client, base_image or dockerfile_default_base(dockerfile))
    wheels = wheelhouse.ensure_wheels(lockfile, find_links, echo)
    tag = tag or default_tag(variant.name)
    with tempfile.TemporaryDirectory(prefix="algoperf-build-") as tmp:
        context = Path(tmp)
        project_wheel = wheelhouse.build_project_wheel(root, context / "project")
        project_sha = file_sha256(project_wheel)
        _keep_project_wheel(project_wheel, project_sha)
        (context / "project" / "requirements.txt").write_text(
            f"algoperf=={project_wheel.name.split('-')[1]} --hash=sha256:{project_sha}\n")
        revision = source.revision(root)
        labels = {
            LABEL + "variant": variant.name,
            LABEL + "lockfile-sha256": lockfile.sha256,
            LABEL + "source-revision": revision,
            LABEL + "base-image": base_image or dockerfile_default_base(dockerfile),
            LABEL + "base-image-id": base.id,
            LABEL + "project-wheel-sha256": project_sha,
            LABEL + "user-uid": str(DEFAULT_UID),
            "org.opencontainers.image.revision": revision,
        }
        inputs = _digest({"dockerfile": file_sha256(dockerfile), **labels})
        labels[LABEL + "inputs-sha256"] = inputs
        existing = engine.find_labelled(client, LAST_LABEL, inputs_sha256=inputs)
        if existing is not None and not no_cache:
            existing.tag(tag)
            echo(f"image up to date (inputs {inputs[:12]})")
            return existing
        shutil.copy2(dockerfile, context / "Dockerfile")
        (context / "lock").mkdir()
        shutil.copy2(lockfile.path, context / "lock" / "requirements.txt")
        (context / "wheels").mkdir()
        for wheel in wheels.values():
            _link(wheel, context / "wheels" / wheel.name)
        echo(f"building {tag} (variant {variant.name}, base {base.id[:19]}, "
             f"{len(wheels)} wheels)")
        return stream_build(client, context, echo, tag=tag, nocache=no_cache, labels=labels,
                            buildargs={"BASE_IMAGE": base.tags[0] if base.tags else base.id,
                                       "VARIANT": variant.name,
                                       "USER_UID": str(DEFAULT_UID)})


def project_wheel_cache() -> Path:
    return wheelhouse.cache_dir() / "project-wheels"


def _keep_project_wheel(wheel: Path, sha: str) -> None:
    """Keeps the project's wheel by hash, so verify-image can check the image against it."""
    dest = project_wheel_cache() / sha / wheel.name
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheel, dest)


_SUBMISSION_DOCKERFILE = """\
# A submission's hash-locked packages on top of an algoperf image (algoperf docker build
# --submission). Built with network "none" from staged wheels, like the image itself.
ARG IMAGE
FROM ${IMAGE} AS deps
USER root
COPY requirements.txt /build/requirements.txt
COPY wheels/ /build/wheels/
RUN python3 -m venv /build/installer \\
 && /build/installer/bin/python -m pip install --target /opt/submission-deps --no-index \\
      --find-links /build/wheels --require-hashes --no-deps --only-binary :all: --no-compile \\
      --no-cache-dir --disable-pip-version-check --quiet -r /build/requirements.txt \\
 && /opt/algoperf/bin/python -m compileall -f -q -j 0 --invalidation-mode checked-hash \\
      /opt/submission-deps

FROM ${IMAGE}
COPY --from=deps /opt/submission-deps /opt/submission-deps
ENV PYTHONPATH=/opt/algoperf-project:/opt/submission-deps
"""


def submission_packages(image: Image, submission_dir: Path) -> tuple[Lockfile, list[str]]:
    """The submission's lockfile and the entries it adds to ``image``'s environment.

    A package the image already has at the same version is not installed again; at another
    version it is an error (two versions of one package cannot share an interpreter).
    """
    path = submission_dir / SUBMISSION_REQUIREMENTS
    if not path.is_file():
        raise UserError(f"{submission_dir} has no {SUBMISSION_REQUIREMENTS}; a submission's "
                        "packages must be pinned there with == and --hash (e.g. `uv pip "
                        "compile --generate-hashes`)")
    sub = parse_lockfile(path)
    variant_lock = locked_for(image)
    installed = variant_lock.installed()
    added, conflicts = [], []
    for name, entry in sorted(sub.installed().items()):
        have = installed.get(name)
        if have is None:
            added.append(name)
        elif have.version != entry.version:
            conflicts.append(f"{name} {entry.version} (the image has {have.version})")
    if conflicts:
        raise UserError(f"{path} pins versions the image already has at others: "
                        f"{', '.join(conflicts)}; use the image's versions")
    return sub, added


def locked_for(image: Image) -> Lockfile:
    """The checkout's lockfile of ``image``'s variant, which must be the one it was built from."""
    from algoperf.containers.variants import get_variant

    labels = image.labels or {}
    variant = labels.get(LABEL + "variant")
    if variant is None:
        raise UserError(f"image {image.short_id} was not built by `algoperf docker build` (no "
                        f"{LABEL}variant label)")
    lockfile = parse_lockfile(get_variant(variant).lockfile)
    built_from = labels.get(LABEL + "lockfile-sha256")
    if built_from != lockfile.sha256:
        raise UserError(f"lockfile mismatch: image {image.short_id} was built from lockfile "
                        f"sha256 {str(built_from)[:12]}, {lockfile.path.name} is now "
                        f"{lockfile.sha256[:12]}; rebuild with `algoperf docker build "
                        f"--variant {variant}`")
    return lockfile


def build_submission_image(client: docker.DockerClient, image: Image, submission_dir: Path,
                           tag: str | None = None, find_links: tuple[str, ...] = (),
                           echo: Callable[[str], None] = print) -> Image:
    """``image`` plus the submission's hash-locked packages, in a derived image."""
    submission_dir = submission_dir.resolve()
    sub, added = submission_packages(image, submission_dir)
    wheels = wheelhouse.ensure_wheels(sub, find_links, echo)
    tag = tag or f"{image.tags[0] if image.tags else 'algoperf'}-{submission_dir.name.lower()}"
    labels = {**(image.labels or {}),
              LABEL + "parent-image-id": image.id,
              LABEL + "submission": submission_dir.name,
              LABEL + "submission-lock-sha256": sub.sha256}
    inputs = _digest({"dockerfile": hashlib.sha256(_SUBMISSION_DOCKERFILE.encode()).hexdigest(),
                      **labels})
    labels[LABEL + "inputs-sha256"] = inputs
    existing = engine.find_labelled(client, LAST_LABEL, inputs_sha256=inputs)
    if existing is not None:
        existing.tag(tag)
        echo(f"submission image up to date (inputs {inputs[:12]})")
        return existing
    with tempfile.TemporaryDirectory(prefix="algoperf-build-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(_SUBMISSION_DOCKERFILE)
        entries = sub.installed()
        (context / "requirements.txt").write_text(
            "\n".join(entries[name].requirement_line() for name in added) + "\n")
        (context / "wheels").mkdir()
        for name in added:
            _link(wheels[name], context / "wheels" / wheels[name].name)
        echo(f"building {tag}: {len(added)} package(s) of {submission_dir.name} on "
             f"{image.short_id}")
        return stream_build(client, context, echo, tag=tag, labels=labels,
                            buildargs={"IMAGE": image.id})
