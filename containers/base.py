"""``algoperf docker base``: a minimal Debian image with Python 3.11, built from a Debian mirror.

For sites without a container registry (air-gapped clusters, and the machines this project is
built on): debootstrap installs Debian's ``minbase`` plus ``python3`` and ``python3-venv`` into a
folder, which is cleaned of apt's caches and documentation and imported as an image. The image
is labelled with its recipe's digest (suite, mirror, packages) and with the digest of its
installed package list; an image with the same recipe is reused unless asked to rebuild. The
mirror's content changes over time, so the package-list digest, not the recipe, says what
exactly went in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
from docker.models.images import Image

from algoperf.containers import engine
from algoperf.errors import UserError

SUITE = "bookworm"  # CPython 3.11, which the lockfiles target
PACKAGES = ("python3", "python3-venv")
DEFAULT_TAG = "algoperf/base:bookworm"
IMPORTED_STEP = "Imported from"  # the history of an imported image
RECIPE_VERSION = 1  # bump when the steps below change what an image contains
# Removed after debootstrap: caches and docs nothing at run time reads.
PRUNE = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
         "usr/share/info", "usr/share/locale", "var/log")


def host_mirror(sources_dirs: tuple[Path, ...] = (Path("/etc/apt"),)) -> str | None:
    """The first Debian mirror the host's apt uses (deb822 ``URIs:`` or one-line ``deb``)."""
    for root in sources_dirs:
        files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*"))]
        for f in files:
            if not f.is_file() or f.suffix not in (".list", ".sources"):
                continue
            for line in f.read_text(errors="replace").splitlines():
                m = (re.match(r"\s*URIs:\s*(\S+)", line)
                     or re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line))
                if m and "security" not in m.group(1) and m.group(1).startswith("http"):
                    return m.group(1).rstrip("/")
    return None


def recipe_digest(suite: str, mirror: str, packages: tuple[str, ...]) -> str:
    recipe = {"version": RECIPE_VERSION, "suite": suite, "mirror": mirror,
              "packages": sorted(packages), "prune": PRUNE}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise UserError("debootstrap needs root: run `algoperf docker base` as root (or with "
                        "sudo)")
    missing = [t for t in ("debootstrap", "tar") if shutil.which(t) is None]
    if missing:
        raise UserError(f"{' and '.join(missing)} not found; install with "
                        f"`apt-get install {' '.join(missing)}`")


def _debootstrap(root: Path, suite: str, mirror: str, packages: tuple[str, ...],
                 echo) -> None:
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite,
           str(root), mirror]
    echo(f"debootstrap {suite} from {mirror} (a few minutes)")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise UserError(f"debootstrap failed: {' | '.join(tail)}; check that the mirror "
                        f"{mirror} serves {suite} (pass --mirror URL)")
    for rel in PRUNE:
        target = root / rel
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir()
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)


def _package_list(root: Path) -> str:
    out = subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W",
                          "-f=${Package} ${Version} ${Architecture}\n"],
                         capture_output=True, text=True, check=True).stdout
    return "".join(sorted(out.splitlines(keepends=True)))


def build_base(client: docker.DockerClient, tag: str = DEFAULT_TAG, suite: str = SUITE,
               mirror: str | None = None, rebuild: bool = False, echo=print) -> Image:
    """The base image for ``suite``: reused if one with the same recipe exists, else built."""
    mirror = mirror or host_mirror()
    if mirror is None:
        raise UserError("no Debian mirror found in /etc/apt; pass --mirror URL")
    recipe = recipe_digest(suite, mirror, PACKAGES)
    existing = engine.find_labelled(client, IMPORTED_STEP, base_recipe=recipe)
    if existing is not None and not rebuild:
        existing.tag(tag)
        echo(f"base image up to date (recipe {recipe[:12]})")
        return existing
    _check_tools()
    with tempfile.TemporaryDirectory(prefix="algoperf-base-") as tmp:
        root = Path(tmp) / "root"
        _debootstrap(root, suite, mirror, PACKAGES, echo)
        packages = _package_list(root)
        tarball = Path(tmp) / "rootfs.tar"
        # Numeric owners and sorted names: the tarball depends on the files, not on the host.
        subprocess.run(["tar", "--numeric-owner", "--sort=name", "-C", str(root), "-cf",
                        str(tarball), "."], check=True)
        labels = {"org.algoperf.base-recipe": recipe,
                  "org.algoperf.base-suite": suite,
                  "org.algoperf.base-mirror": mirror,
                  "org.algoperf.base-packages-sha256": hashlib.sha256(
                      packages.encode()).hexdigest()}
        changes = ["ENV LANG=C.UTF-8",
                   "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   'CMD ["python3"]'] + [f"LABEL {k}={v}" for k, v in labels.items()]
        echo("importing the root file system")
        repository, _, tag_name = tag.rpartition(":") if ":" in tag else (tag, "", "latest")
        result = client.api.import_image_from_file(str(tarball), repository=repository,
                                                   tag=tag_name, changes=changes)
    image_id = json.loads(result.strip().splitlines()[-1]).get("status") if isinstance(
        result, str) else None
    return engine.get_image(client, image_id or tag)
