"""`algoperf datasets list|download|prepare|verify`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from algoperf import terminal
from algoperf.datasets import fetch, operations
from algoperf.datasets.manifest import Manifest, builtin_names, load, load_file
from algoperf.errors import UserError

_data_dir = click.option("--data-dir", default="~/data", show_default=True,
                         type=click.Path(path_type=Path),
                         help="The data directory (shared volume) the workloads read.")
_manifest = click.option("--manifest", "manifest_files", multiple=True,
                         type=click.Path(path_type=Path), metavar="FILE",
                         help="A dataset manifest (JSON) to use instead of the built-in one of "
                              "the dataset it names; its hashes are the ones checked.")
_names = click.argument("names", nargs=-1, required=True, metavar="NAME...")


def _expand(data_dir: Path) -> Path:
    return data_dir.expanduser()


def _manifests(names: tuple[str, ...], manifest_files: tuple[Path, ...]) -> dict[str, Manifest]:
    """The manifest of every name: the user's file where one names it, else the built-in."""
    custom = {}
    for path in manifest_files:
        m = load_file(path)
        if m.name not in names:
            raise UserError(f"--manifest {path} describes {m.name!r}, which is not among the "
                            f"datasets named ({', '.join(names)})")
        custom[m.name] = m
    return {name: custom.get(name) or load(name) for name in dict.fromkeys(names)}


def _one_name_only(option: str, value, names: tuple[str, ...]) -> None:
    if value is not None and len(set(names)) > 1:
        raise UserError(f"{option} applies to one dataset; name only one")


def _echo(text: str) -> None:
    click.echo(text, err=True)


@click.group("datasets", cls=terminal.CommandGroup)
def datasets() -> None:
    """Download, prepare and verify the benchmark's datasets."""


@datasets.command("list")
@_data_dir
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(data_dir: Path, as_json: bool) -> None:
    """Every AlgoPerf dataset with its size and its status in DATA_DIR."""
    data_dir = _expand(data_dir)
    statuses = [operations.status(data_dir, name) for name in builtin_names()]
    if as_json:
        click.echo(json.dumps([{
            "name": s.manifest.name, "workloads": list(s.manifest.workloads),
            "download_bytes": s.manifest.download_bytes,
            "prepared_bytes": s.manifest.prepared_bytes, "implemented": s.manifest.implemented,
            "status": s.state, "detail": s.detail, "root": s.root,
            "license": s.manifest.license, "gating": s.manifest.gating}
            for s in statuses], indent=1))
        return
    table = Table(title=f"datasets in {data_dir}")
    for column in ("dataset", "workloads", "download", "prepared", "status", "license / access"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        m = s.manifest
        approx = not m.files
        state = s.state + (f" (root {s.root[:12]})" if s.root else "")
        state += f": {s.detail}" if s.detail and s.state not in ("prepared",
                                                                  "not implemented") else ""
        table.add_row(m.name, ", ".join(m.workloads), operations.human_bytes(m.download_bytes,
                                                                             approx),
                      operations.human_bytes(m.prepared_bytes, approx=True),
                      state, m.gating or m.license)
    terminal.console().print(table)


@datasets.command("download")
@_names
@_data_dir
@click.option("--source", default=None, metavar="URL",
              help="Base URL of a mirror (https://, http:// or gs://) to fetch from instead of "
                   "the manifest's mirrors; hashes are still checked.")
@_manifest
@click.option("--jobs", default=fetch.Options.jobs, show_default=True, type=int,
              help="Files downloaded in parallel.")
@click.option("--retries", default=fetch.Options.retries, show_default=True, type=int,
              help="Retries per file and source after a failed or broken transfer.")
@click.option("--backoff", default=fetch.Options.backoff, show_default=True, type=float,
              help="Seconds before the first retry; doubles with each retry.")
@click.option("--force", is_flag=True, help="Prepare again even if already prepared.")
@click.option("--delete-downloads", is_flag=True,
              help="Remove the downloaded files once the dataset is prepared.")
def download_command(names, data_dir, source, manifest_files, jobs, retries, backoff, force,
                     delete_downloads) -> None:
    """Download datasets (resuming, checking sha256) and prepare them in DATA_DIR."""
    _one_name_only("--source", source, names)
    if jobs < 1 or retries < 0 or backoff < 0:
        raise UserError("--jobs must be at least 1, --retries and --backoff at least 0")
    options = fetch.Options(retries=retries, backoff=backoff, jobs=jobs)
    data_dir = _expand(data_dir)
    for name, m in _manifests(names, manifest_files).items():
        operations.download(data_dir, name, m, source=source, options=options, force=force,
                            keep_downloads=not delete_downloads, echo=_echo)


@datasets.command("prepare")
@_names
@_data_dir
@click.option("--raw-dir", default=None, type=click.Path(path_type=Path),
              help="Folder holding the dataset's files, downloaded by you (default: "
                   "DATA_DIR/downloads/NAME).")
@_manifest
@click.option("--force", is_flag=True, help="Prepare again even if already prepared.")
def prepare_command(names, data_dir, raw_dir, manifest_files, force) -> None:
    """Prepare datasets from files already downloaded (checked against the manifest)."""
    _one_name_only("--raw-dir", raw_dir, names)
    data_dir = _expand(data_dir)
    for name, m in _manifests(names, manifest_files).items():
        operations.prepare(data_dir, name, m, raw_dir=raw_dir.expanduser() if raw_dir else None,
                           force=force, echo=_echo)


@datasets.command("verify")
@_names
@_data_dir
@_manifest
def verify_command(names, data_dir, manifest_files) -> None:
    """Recompute every file hash of prepared datasets and compare with their manifests."""
    data_dir = _expand(data_dir)
    for name, m in _manifests(names, manifest_files).items():
        result = operations.verify(data_dir, name, m)
        files = result.manifest.files
        official = {True: "the official prepared root",
                    False: "NOT the official prepared root",
                    None: "no official root known"}[result.official]
        click.echo(f"{name}: ok, {len(files)} files, "
                   f"{operations.human_bytes(sum(f.size for f in files))}, root "
                   f"{result.manifest.root} ({official})")
