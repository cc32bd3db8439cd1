"""How commands print: the rich Console every command prints through, and the click group
whose command list keeps each summary whole.

Off a terminal (pipes, CI logs) rich would squeeze tables into 80 columns and truncate
workload names; there the width is wide enough for the tables instead.
"""

from __future__ import annotations

import click
from rich.console import Console

PIPE_WIDTH = 160


def console(stderr: bool = False) -> Console:
    """The Console of a command. Off a terminal, tables get `PIPE_WIDTH` columns and text is
    never wrapped (soft wrap), so a long path stays on one line for the reader and for grep."""
    c = Console(stderr=stderr)
    if not c.is_terminal:
        c = Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)
    return c


class CommandGroup(click.Group):
    """A click group whose `--help` lists each command's summary whole: click would cut it
    to the terminal's width minus the names, mid-sentence."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def summary(command: click.Command) -> str:
    """A command's first sentence, whole (its ``short_help`` when it sets one)."""
    if command.short_help:
        return command.short_help
    paragraph = " ".join((command.help or "").split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[:end + 1]
