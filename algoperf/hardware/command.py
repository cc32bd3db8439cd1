"""`algoperf fingerprint`: show this machine's fingerprint, or check it against a profile."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from algoperf import terminal
from algoperf.hardware.fingerprint import GPU_FIELDS, IDENTITY, Fingerprint
from algoperf.hardware.readings import Reading
from algoperf.hardware.reference_profiles import compare_with, load_profile, profile_names


@click.command("fingerprint")
@click.option("--json", "as_json", is_flag=True, help="Print the fingerprint as JSON.")
@click.option("--check", "profile", default=None, metavar="PROFILE",
              help="Compare with a reference profile (name or .json file); exit 1 on a "
                   "mismatch.")
@click.option("--profiles", "show_profiles", is_flag=True,
              help="List the reference profiles and exit.")
def fingerprint_command(as_json: bool, profile: str | None, show_profiles: bool) -> None:
    """Read the GPUs through NVML and the host, and print the machine's fingerprint."""
    if show_profiles:
        _print_profiles()
        return
    check = compare_with(profile)
    fp = check.fingerprint
    if as_json:
        data: dict[str, Any] = fp.to_json()
        if profile is not None:
            data["check"] = {"reference": check.profile.name, "certifiable": check.certifiable,
                             "differences": [d.to_json() for d in check.differences]}
        click.echo(json.dumps(data, indent=1))
    else:
        if profile is not None:  # the verdict first, then what it was read from
            click.echo(check.report())
            click.echo("")
        _print_fingerprint(terminal.console(), fp)
    if profile is not None and not check.certifiable:
        sys.exit(1)


def _print_profiles() -> None:
    table = Table(title="reference profiles")
    for column in ("name", "rules", "description"):
        table.add_column(column)
    for name in profile_names():
        p = load_profile(name)
        table.add_row(name, p.rules or "any", p.description)
    terminal.console().print(table)


def _print_fingerprint(console: Console, fp: Fingerprint) -> None:
    s = fp.system
    if fp.nvml_problem and not fp.gpus:
        click.echo(f"NVML: {fp.nvml_problem[1]}")
    else:
        cuda = s["cuda_driver_version"]
        cuda_text = (f"{cuda.value // 1000}.{cuda.value % 1000 // 10}" if cuda.ok else str(cuda))
        click.echo(f"NVML {s['nvml_version']}: driver {s['driver_version']}, CUDA {cuda_text}, "
                   f"{len(fp.gpus)} GPU(s)")
    if fp.gpus:
        console.print(_gpu_table(fp))
        console.print(_identity_table(fp))
    if len(fp.gpus) > 1:
        console.print(_topology_table(fp))
    host = Table(title="host")
    host.add_column("field")
    host.add_column("value")
    for name, reading in fp.host.items():
        host.add_row(name, str(reading))
    console.print(host)
    click.echo(f"fingerprint digest: {fp.digest()}")


def _gpu_table(fp: Fingerprint) -> Table:
    """Per-GPU fields; a value shared by GPUs is printed once for all of them."""
    table = Table(title="GPUs")
    table.add_column("field")
    table.add_column("value (GPUs)")
    for name, kind in GPU_FIELDS.items():
        if kind == IDENTITY:
            continue
        groups: dict[str, list[int]] = {}
        for i, gpu in enumerate(fp.gpus):
            groups.setdefault(_text(gpu[name]), []).append(i)
        if len(groups) == 1:
            cell = next(iter(groups))
        else:
            cell = "\n".join(f"{v} ({','.join(map(str, idx))})" for v, idx in groups.items())
        table.add_row(name, cell)
    return table


def _identity_table(fp: Fingerprint) -> Table:
    table = Table(title="GPU identities (not in the digest)")
    for column in ("GPU", "uuid", "serial", "pci bus id"):
        table.add_column(column)
    for i, gpu in enumerate(fp.gpus):
        table.add_row(str(i), str(gpu["uuid"]), str(gpu["serial"]), str(gpu["pci_bus_id"]))
    return table


def _topology_table(fp: Fingerprint) -> Table:
    """Like ``nvidia-smi topo -m``: NV<n> for n NVLinks between a pair, else the PCIe path."""
    n = len(fp.gpus)
    table = Table(title="topology (NV<n>: n NVLinks; PIX/PXB/PHB/NODE/SYS: PCIe path)")
    table.add_column("")
    for j in range(n):
        table.add_column(f"GPU{j}")
    pcie = fp.topology["pcie_common_ancestor"]
    nvlink = fp.topology["nvlink"]
    for i in range(n):
        row = []
        for j in range(n):
            links = nvlink.value[i][j] if nvlink.ok else 0
            if i != j and isinstance(links, int) and links > 0:
                row.append(f"NV{links}")
            else:
                row.append(pcie.value[i][j] if pcie.ok else "?")
        table.add_row(f"GPU{i}", *row)
    return table


def _text(reading: Reading) -> str:
    if reading.ok and isinstance(reading.value, list):
        return ", ".join(map(str, reading.value)) or "-"
    return str(reading)
