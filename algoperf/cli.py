"""The `algoperf` command line. Each command lives beside the code it drives; this module
only gathers them and turns errors into one clear line (a traceback only with --debug)."""

from __future__ import annotations

import logging
import sys

import click

from algoperf import distributed
from algoperf.errors import UserError
from algoperf.terminal import CommandGroup


class _LazyGroup(CommandGroup):
    """Imports a command's module only when that command runs, so `algoperf score` never
    pays for JAX or PyTorch."""

    COMMANDS = {
        "run": "algoperf.run_command:run",
        "check": "algoperf.check_command:check",
        "demo": "algoperf.demo:demo",
        "datasets": "algoperf.datasets.command:datasets",
        "fingerprint": "algoperf.hardware.command:fingerprint_command",
        "keys": "algoperf.verification.command:keys_group",
        "workloads": "algoperf.workloads.command:workloads",
        "docker": "algoperf.containers.command:docker",
        "env": "algoperf.containers.command:env",
        "report": "algoperf.scoring.report_command:report_command",
        "score": "algoperf.scoring.command:score_command",
        "sweep": "algoperf.sweep.command:sweep",
        "verify": "algoperf.verification.command:verify_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = self.COMMANDS.get(name)
        if target is None:
            return None
        import importlib

        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=_LazyGroup)
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logging.")
@click.version_option(package_name="algoperf")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """algoperf: run, score and verify the AlgoPerf training-algorithms benchmark."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _rank_label() -> str:
    """``'rank N: '`` in a torchrun process other than rank 0, else nothing."""
    rank = distributed.process_rank()
    return f"rank {rank}: " if rank else ""


def main() -> None:
    """Console entry point: runs the CLI, printing errors as one line unless --debug."""
    debug = "--debug" in sys.argv[1:]
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as e:
        command = e.ctx.command_path if e.ctx else "algoperf"
        click.echo(f"error: {e.format_message()} (see: {command} --help)", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except UserError as e:
        if debug:
            raise
        if not distributed.reported_elsewhere(e):  # torchrun: rank 0 reports for all ranks
            click.echo(f"error: {_rank_label()}{e}", err=True)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - the last line of defence for users
        if debug:
            raise
        click.echo(f"error: {_rank_label()}{type(e).__name__}: {e} (rerun with --debug for "
                   "details)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
