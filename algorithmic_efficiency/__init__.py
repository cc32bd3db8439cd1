"""``algorithmic_efficiency``: AlgoPerf v0.5's package name, an alias of ``algoperf``.

Submissions written for AlgoPerf v0.5 import ``algorithmic_efficiency.spec``,
``algorithmic_efficiency.pytorch_utils`` and so on. A meta-path finder, installed when this
package is imported, maps every ``algorithmic_efficiency.X`` to the module ``algoperf.X``: the
alias name is bound to the very same module object, so enum members, ``isinstance`` checks and
module-level state are shared. Submodules are imported only when asked for, so importing the
alias imports neither JAX nor PyTorch.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

import algoperf

ALIAS = __name__
TARGET = "algoperf"

__version__ = algoperf.__version__


class _AliasLoader(importlib.abc.Loader):
    """Loads ``algorithmic_efficiency.X`` by importing ``algoperf.X`` and returning it."""

    def __init__(self, target: str) -> None:
        self._target = target
        self._target_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self._target)
        self._target_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamps the alias spec on the module; give it back its own.
        module.__spec__ = self._target_spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds ``algorithmic_efficiency.X`` wherever ``algoperf.X`` exists."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(ALIAS + "."):
            return None
        real_name = TARGET + fullname[len(ALIAS):]
        real_spec = importlib.util.find_spec(real_name)
        if real_spec is None:
            return None
        return importlib.machinery.ModuleSpec(
            fullname,
            _AliasLoader(real_name),
            is_package=real_spec.submodule_search_locations is not None,
        )


def __getattr__(name: str) -> ModuleType:
    """``algorithmic_efficiency.spec`` works even before ``import algorithmic_efficiency.spec``."""
    if not name.startswith("_") and importlib.util.find_spec(f"{TARGET}.{name}") is not None:
        return importlib.import_module(f"{ALIAS}.{name}")
    raise AttributeError(f"module {ALIAS!r} has no attribute {name!r}")


# Ahead of the path finders, which would otherwise load a second copy of algoperf.X.
# Matched by name, not class, so a reload of this package does not install a second finder.
if not any(type(finder).__qualname__ == "_AliasFinder" and type(finder).__module__ == ALIAS
           for finder in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())
