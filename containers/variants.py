"""Image variants, read from ``[tool.algoperf.image-variants]`` in pyproject.toml.

A variant's Python environment is the project's dependencies plus some extras plus a few
variant-only requirements (PyTorch's CPU build, ``jax[cuda12]``, AlgoPerf's torch 2.5.1 for
``pytorch-cuda``). AlgoPerf learnt that one image
cannot hold the GPU builds of both frameworks (their cuDNN versions clash), so each CUDA variant
puts one framework on the GPU and the other on the CPU.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

from algoperf.containers import source
from algoperf.errors import UserError


@dataclasses.dataclass(frozen=True)
class Variant:
    """One image variant: what goes into its lockfile, and where that lockfile lives."""

    name: str
    description: str
    requirements: tuple[str, ...]  # the lock's input, one PEP 508 line each
    find_links: tuple[str, ...]  # where requirements PyPI does not serve are found

    @property
    def lockfile(self) -> Path:
        return source.LOCKS_DIR / f"{self.name}.txt"

    @property
    def uses_cuda(self) -> bool:
        return self.name.endswith("-cuda")


def lock_input(project: dict[str, Any], table: dict[str, Any]) -> tuple[str, ...]:
    """The requirement lines a variant locks: dependencies, then its extras, then its own."""
    extras = project.get("optional-dependencies", {})
    lines = list(project.get("dependencies", []))
    for extra in table.get("extras", []):
        if extra not in extras:
            raise UserError(f"pyproject.toml: image variant extra {extra!r} is not in "
                            "[project.optional-dependencies]")
        lines += extras[extra]
    lines += table.get("requirements", [])
    return tuple(lines)


def all_variants() -> dict[str, Variant]:
    """Every variant pyproject.toml declares, by name."""
    data = source.pyproject()
    tables = data.get("tool", {}).get("algoperf", {}).get("image-variants", {})
    return {
        name: Variant(name=name, description=table.get("description", ""),
                      requirements=lock_input(data["project"], table),
                      find_links=tuple(table.get("find-links", [])))
        for name, table in tables.items()
    }


def get_variant(name: str) -> Variant:
    """The variant called ``name``, or one line naming the known ones."""
    variants = all_variants()
    if name not in variants:
        close = difflib.get_close_matches(name, variants, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"unknown image variant {name!r}{hint} (known: {', '.join(variants)})")
    return variants[name]
