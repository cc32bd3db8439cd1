"""The rich Console every command prints through.

Off a terminal (pipes, CI logs) rich would squeeze tables into 80 columns and truncate
workload names; there the width is wide enough for the tables instead.
"""

from __future__ import annotations

from rich.console import Console

PIPE_WIDTH = 160


def console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    if not c.is_terminal:
        c = Console(stderr=stderr, width=PIPE_WIDTH)
    return c
