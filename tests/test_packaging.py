"""The installed package matches the checkout, and the checkout stands on its own.

pyproject.toml lists every package by hand (the top-level folders install under one namespace
through ``package-dir``, which setuptools' discovery does not follow); a folder left out of the
list is silently missing from a wheel or an image, so these tests compare the list with the tree.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_in_tree() -> set[str]:
    """Every folder with an ``__init__.py`` under a ``package-dir`` root, by its installed name."""
    found = set()
    for name, folder in SETUPTOOLS["package-dir"].items():
        root = ROOT / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root)
            if "__pycache__" in relative.parts:
                continue
            found.add(".".join((name, *relative.parts)) if relative.parts else name)
    return found


def test_every_package_folder_is_listed_in_pyproject():
    missing = _packages_in_tree() - set(SETUPTOOLS["packages"])
    assert not missing, f"add to pyproject.toml's [tool.setuptools] packages: {missing}"


def test_every_listed_package_exists_in_the_tree():
    stale = set(SETUPTOOLS["packages"]) - _packages_in_tree()
    assert not stale, f"pyproject.toml lists packages with no folder: {stale}"


# A relative path that climbs out of its folder, and an absolute path.
_CLIMBING = re.compile(r"(?:\.\./)+[\w.+-]+(?:/[\w.+-]+)*")
_ABSOLUTE = re.compile(r"(?<![\w.~])/[\w.+-]+(?:/[\w.+-]+)+")


def _beside_the_checkout(text: str, file: Path, root: Path = ROOT) -> list[str]:
    """The paths ``text`` (of ``file``) names that exist on this machine outside the checkout
    ``root`` but in the folder that holds it: relative ones from the root or the file's
    folder, and absolute ones. Paths that exist nowhere (the ``../escape.txt`` of a traversal
    test, an example path) are not references."""
    found = []
    for token in _CLIMBING.findall(text):
        for base in (root, file.parent):
            target = (base / token).resolve()
            if not target.is_relative_to(root) and target.exists():
                found.append(token)
                break
    for token in _ABSOLUTE.findall(text):
        target = Path(token)
        if (target.is_relative_to(root.parent) and not target.is_relative_to(root)
                and target.exists()):
            found.append(token)
    return found


def test_no_tracked_file_refers_to_files_outside_the_repository():
    """A fresh clone runs every test and documented command: nothing points beside the checkout
    (a workplace's shared folders, a mirror next to the clone)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    outside = {}
    for path in tracked:
        file = ROOT / path
        if file.suffix not in {".py", ".md", ".toml", ".txt", ".sh", ".cfg", ""} or \
                not file.is_file():
            continue
        found = _beside_the_checkout(file.read_text(errors="replace"), file)
        if found:
            outside[path] = found
    assert not outside, f"these files name paths beside the repository: {outside}"


def test_the_outside_reference_check_finds_paths_beside_a_checkout_and_only_those(tmp_path):
    root = tmp_path / "checkout"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "facts.md").write_text("")
    doc = root / "docs" / "b.md"
    text = ("see ../notes/facts.md, ../../notes/facts.md and "
            f"{tmp_path / 'notes' / 'facts.md'}; not ../escape.txt, ../docs/a.md or "
            f"{root / 'docs' / 'a.md'}")
    assert _beside_the_checkout(text, doc, root) == [
        "../notes/facts.md", "../../notes/facts.md", str(tmp_path / "notes" / "facts.md")]


def _code_block(text: str, after: str) -> list[str]:
    return text.split(after, 1)[1].split("```\n", 2)[1].splitlines()


def test_the_readme_layout_is_the_architecture_docs_top_level_in_its_words():
    readme = _code_block((ROOT / "README.md").read_text(), "## Layout")
    tree = _code_block((ROOT / "docs" / "architecture.md").read_text(), "# Architecture")
    assert all(line in tree for line in readme), set(readme) - set(tree)
    top_level = [line for line in tree if line and not line.startswith(" ")]
    assert [line for line in readme if not line.startswith(" ")] == top_level
    folders = {line.split("/")[0] for line in top_level}
    assert all((ROOT / folder).is_dir() for folder in folders)
