"""The `algoperf docker` and `algoperf env` command groups."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from algoperf.check_command import NO_CHECK
from algoperf.run_options import run_options
from algoperf.terminal import CommandGroup

FIND_LINKS = click.option(
    "--find-links", multiple=True, metavar="DIR-OR-URL",
    help="Extra place for wheels PyPI does not serve (PyTorch's CPU build); repeatable.")


def _echo(message: str) -> None:
    click.echo(message, err=True)


@click.group(cls=CommandGroup)
def docker() -> None:
    """Build, check and run the pinned algoperf images (docs/containers.md)."""


@docker.command()
@click.option("--tag", default="algoperf/base:bookworm", show_default=True)
@click.option("--mirror", default=None, metavar="URL",
              help="Debian mirror; default: the first one the host's apt uses.")
@click.option("--rebuild", is_flag=True, help="Build even if an image of this recipe exists.")
def base(tag: str, mirror: str | None, rebuild: bool) -> None:
    """Build a minimal Debian base image with Python 3.11 from a Debian mirror (debootstrap)."""
    from algoperf.containers import base as base_image
    from algoperf.containers import engine

    image = base_image.build_base(engine.connect(), tag=tag, mirror=mirror, rebuild=rebuild,
                                  echo=_echo)
    click.echo(image.id)


@docker.command()
@click.option("--variant", default="cpu", show_default=True,
              help="cpu, jax-cuda or pytorch-cuda (pyproject.toml's image variants).")
@click.option("--base-image", default=None,
              help="Base image; default: the Dockerfile's, pinned by digest.")
@click.option("--tag", default=None, help="Default: algoperf:<variant>.")
@click.option("--submission", "submission_dir", default=None,
              type=click.Path(path_type=Path, file_okay=False),
              help="Also build a derived image with this submission's hash-locked "
                   "requirements.txt.")
@click.option("--no-cache", is_flag=True, help="Build every layer again.")
@FIND_LINKS
def build(variant: str, base_image: str | None, tag: str | None, submission_dir: Path | None,
          no_cache: bool, find_links: tuple[str, ...]) -> None:
    """Build the image of a variant from its lockfile; prints the image id."""
    from algoperf.containers import build as image_build
    from algoperf.containers import engine, variants

    spec = variants.get_variant(variant)
    client = engine.connect()
    image = image_build.build_image(client, spec, base_image=base_image,
                                    tag=None if submission_dir else tag,
                                    find_links=find_links, no_cache=no_cache, echo=_echo)
    if submission_dir is not None:
        if not submission_dir.is_dir():
            raise click.UsageError(f"--submission {submission_dir} is not a folder")
        image = image_build.build_submission_image(client, image, submission_dir, tag=tag,
                                                   find_links=find_links, echo=_echo)
    click.echo(image.id)


@docker.command("verify-image")
@click.argument("image")
@click.option("--submission", "submission_dir", default=None,
              type=click.Path(path_type=Path, file_okay=False),
              help="For a derived image: the submission whose requirements.txt it holds.")
@FIND_LINKS
def verify_image(image: str, submission_dir: Path | None, find_links: tuple[str, ...]) -> None:
    """Check that IMAGE's installed distributions and files match its lockfile's hashes."""
    from algoperf.containers import engine, verify

    client = engine.connect()
    found = engine.get_image(client, image)
    problems = verify.verify_image(client, found, submission_dir, find_links, echo=_echo)
    if problems:
        for line in problems:
            click.echo(line)
        click.echo(f"{image}: {len(problems)} difference(s) from its lockfile", err=True)
        sys.exit(1)
    click.echo(f"{image} ({found.short_id}) matches its lockfile")


@docker.command("run")
@run_options
@click.option("--image", default="algoperf:cpu", show_default=True,
              help="Image built by `algoperf docker build`.")
@click.option("--memory", default=None, metavar="SIZE", help="Memory limit, e.g. 16g.")
@click.option("--cpus", default=None, type=float, help="CPU limit, e.g. 1.5.")
@click.option("--pids-limit", default=4096, show_default=True, type=int)
@click.option("--shm-size", default="2g", show_default=True, help="Size of /dev/shm.")
@click.option("--tmp-size", default="4g", show_default=True, help="Size of the in-memory /tmp.")
@click.option("--gpus", default="auto", show_default=True,
              help="auto (every GPU, for a CUDA image), none, or comma-separated GPU UUIDs.")
@click.option("--signing-key", default=None, envvar="ALGOPERF_SIGNING_KEY",
              type=click.Path(path_type=Path, dir_okay=False),
              help="Organizer's private key (algoperf keys generate): the host witnesses the "
                   "run and seals each trial (docs/verify.md). Env: ALGOPERF_SIGNING_KEY.")
@NO_CHECK
@click.pass_context
def run(ctx: click.Context, image: str, memory: str | None, cpus: float | None,
        pids_limit: int, shm_size: str, tmp_size: str, gpus: str, signing_key: Path | None,
        check: bool, **options) -> None:
    """`algoperf run` in the sandboxed container; takes every option of `algoperf run`.
    The submission is checked against AlgoPerf's rules first (`algoperf check`)."""
    from algoperf.containers.docker_run import DockerOptions, docker_run

    given = ctx.get_parameter_source("data_dir") is not click.core.ParameterSource.DEFAULT
    code = docker_run(options, DockerOptions(image=image, memory=memory, cpus=cpus,
                                             pids_limit=pids_limit, shm_size=shm_size,
                                             tmp_size=tmp_size, gpus=gpus,
                                             signing_key=signing_key, check=check),
                      debug=(ctx.obj or {}).get("debug", False), data_dir_given=given,
                      echo=_echo)
    sys.exit(code)


@click.group(cls=CommandGroup)
def env() -> None:
    """The image environments' lockfiles."""


@env.command()
@click.option("--variant", "variant_names", multiple=True,
              help="Variant to lock; repeatable; default: all.")
@FIND_LINKS
@click.option("--upgrade", is_flag=True, help="Take the newest allowed versions.")
@click.option("--check", is_flag=True,
              help="Only check that the lockfiles match pyproject.toml (exit 1 if not).")
def lock(variant_names: tuple[str, ...], find_links: tuple[str, ...], upgrade: bool,
         check: bool) -> None:
    """Write containers/locks/<variant>.txt, hash-pinned, from pyproject.toml (uv)."""
    from algoperf.containers import lockfiles, variants

    chosen = ([variants.get_variant(n) for n in variant_names] if variant_names
              else list(variants.all_variants().values()))
    if check:
        problems = [p for v in chosen for p in lockfiles.drift(v)]
        for line in problems:
            click.echo(line)
        if problems:
            click.echo("lockfiles out of date: run `algoperf env lock`", err=True)
            sys.exit(1)
        click.echo(f"{len(chosen)} lockfile(s) match pyproject.toml")
        return
    for v in chosen:
        path = lockfiles.lock(v, find_links, upgrade)
        entries = lockfiles.parse_lockfile(path).entries
        click.echo(f"{v.name}: {len(entries)} packages -> {path}")
