"""fastMRI knee single-coil: the official HDF5 volumes, and AlgoPerf's split of them.

Each ``.h5`` file is one knee volume (h5py reads it): ``kspace`` complex64 (slices, 640, W)
with W varying by volume, ``reconstruction_esc`` float32 (slices, 320, 320), the
emulated-single-coil target, and the attribute ``max``, the volume's maximum. Preparation
extracts the official ``knee_singlecoil_train.tar.xz`` and ``knee_singlecoil_val.tar.xz``
(their folders ``singlecoil_train/`` and ``singlecoil_val/`` become
``knee_singlecoil_train/`` and ``knee_singlecoil_val/``, as AlgoPerf's script renames them)
and writes ``meta.json``: the volumes of each split with their number of slices. The split
is AlgoPerf's: 'train' is every training volume, 'validation' the first 100 validation
volumes in sorted order and 'test' the other 99 (the official test volumes have no targets
and are not used). The volumes stay as they are; the input pipeline reads slices from them.

``write_synthetic`` writes small volumes in that format (smaller k-space and targets) for
``algoperf workloads check`` and the tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from algoperf.datasets import content, extract
from algoperf.datasets.manifest import Manifest
from algoperf.errors import UserError

NAME = "fastmri"
TRAIN_DIR = "knee_singlecoil_train"
VAL_DIR = "knee_singlecoil_val"
ARCHIVES = ("knee_singlecoil_train.tar.xz", "knee_singlecoil_val.tar.xz")
ARCHIVE_DIRS = {"singlecoil_train": TRAIN_DIR, "singlecoil_val": VAL_DIR}
NUM_VALIDATION_VOLUMES = 100
META_FILE = "meta.json"
OFFICIAL_COUNTS = {"train": 34_742, "validation": 3_554, "test": 3_581}


def split_volumes(train: list[str], val: list[str]) -> dict[str, list[str]]:
    """AlgoPerf's split of the volume file names (relative to the dataset folder)."""
    val = sorted(val)
    return {"train": sorted(train), "validation": val[:NUM_VALIDATION_VOLUMES],
            "test": val[NUM_VALIDATION_VOLUMES:]}


def _num_slices(path: Path) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as volume:
            kspace, target = volume["kspace"], volume["reconstruction_esc"]
            if kspace.shape[0] != target.shape[0]:
                raise UserError(f"{path.name}: kspace has {kspace.shape[0]} slices and "
                                f"reconstruction_esc {target.shape[0]}")
            return int(kspace.shape[0])
    except (OSError, KeyError) as e:
        raise UserError(f"{path} is not a fastMRI single-coil volume ({e})") from None


def write_meta(directory: Path, splits: dict[str, list[str]]) -> dict[str, int]:
    """Writes ``meta.json`` for the volumes ``splits`` names; returns slices per split."""
    volumes = {split: {name: _num_slices(directory / name) for name in names}
               for split, names in splits.items()}
    counts = {split: sum(slices.values()) for split, slices in volumes.items()}
    (directory / META_FILE).write_text(json.dumps({"volumes": volumes, "slices": counts},
                                                  indent=1) + "\n")
    return counts


def prepare(raw_dir: Path, out: Path, manifest: Manifest) -> dict:
    """Extracts the train and validation archives of ``raw_dir`` into ``out``.

    The archives come by hand (the licence form's signed links); the fastMRI distributors
    publish no checksums, so the manifest lists none and the prepared content manifest's
    root hash is what identifies the data."""
    del manifest
    missing = [name for name in ARCHIVES if not (Path(raw_dir) / name).is_file()]
    if missing:
        raise UserError(
            f"fastMRI needs {', '.join(missing)} in {raw_dir}: fill in the licence form at "
            "https://fastmri.med.nyu.edu/, download the knee single-coil train and validation "
            "archives from the emailed links (curl -C - -o NAME 'LINK') into that folder, then "
            "run: algoperf datasets prepare fastmri --raw-dir FOLDER")
    for name in ARCHIVES:
        scratch = out / ".extract"
        try:
            extract.safe_extract(Path(raw_dir) / name, scratch)
            for theirs, ours in ARCHIVE_DIRS.items():
                for folder in (scratch / theirs, scratch / ours):
                    if folder.is_dir():
                        shutil.move(str(folder), out / ours)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    missing = [d for d in (TRAIN_DIR, VAL_DIR) if not (out / d).is_dir()]
    if missing:
        raise UserError(f"the fastMRI archives held no {', '.join(missing)} folder; they are "
                        f"not {' and '.join(ARCHIVES)}")
    train = [f"{TRAIN_DIR}/{p.name}" for p in sorted((out / TRAIN_DIR).glob("*.h5"))]
    val = [f"{VAL_DIR}/{p.name}" for p in sorted((out / VAL_DIR).glob("*.h5"))]
    return {"examples": write_meta(out, split_volumes(train, val))}


def volumes(directory: Path) -> dict[str, dict[str, int]]:
    """``{split: {volume file: number of slices}}`` of the prepared data in ``directory``."""
    try:
        return json.loads((Path(directory) / META_FILE).read_text())["volumes"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read {Path(directory) / META_FILE} ({e}); prepare fastMRI "
                        "with: algoperf datasets prepare fastmri --raw-dir DIR") from None


def read_slice(path: Path, index: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Slice ``index`` of a volume: k-space complex64 (640, W), target float32 (320, 320)
    and the volume's maximum (0 where the attribute is missing, as AlgoPerf reads it)."""
    import h5py

    try:
        with h5py.File(path, "r") as volume:
            return (np.asarray(volume["kspace"][index], np.complex64),
                    np.asarray(volume["reconstruction_esc"][index], np.float32),
                    float(volume.attrs.get("max", 0.0)))
    except (OSError, KeyError) as e:
        raise UserError(f"cannot read slice {index} of {path} ({e}); prepare fastMRI again "
                        "with: algoperf datasets prepare fastmri --force") from None


def write_volume(path: Path, kspace: np.ndarray, target: np.ndarray, volume_max: float) -> None:
    """A volume file in the official layout."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as volume:
        volume.create_dataset("kspace", data=kspace.astype(np.complex64))
        volume.create_dataset("reconstruction_esc", data=target.astype(np.float32))
        volume.attrs["max"] = np.float32(volume_max)


def synthetic_volume(slices: int, kspace_shape: tuple[int, int], target_shape: tuple[int, int],
                     seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A volume of smooth random images: their centred k-space and their centre crops."""
    random = np.random.RandomState(seed)
    height, width = kspace_shape
    y, x = np.mgrid[:height, :width] / np.array([height, width]).reshape(2, 1, 1)
    images = []
    for _ in range(slices):
        blobs = sum(random.rand() * np.exp(-((y - random.rand()) ** 2 + (x - random.rand()) ** 2)
                                           / (0.02 + 0.05 * random.rand())) for _ in range(4))
        images.append(blobs + 0.05 * random.rand(height, width))
    images = np.asarray(images)
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(images, axes=(1, 2))),
                             axes=(1, 2)) / np.sqrt(height * width)
    top, left = (height - target_shape[0]) // 2, (width - target_shape[1]) // 2
    targets = images[:, top:top + target_shape[0], left:left + target_shape[1]]
    return kspace.astype(np.complex64), targets.astype(np.float32), float(targets.max())


def write_synthetic(data_dir: Path, num_train: int = 64, num_test: int = 16,
                    kspace_shape: tuple[int, int] = (64, 44),
                    target_shape: tuple[int, int] = (32, 32)) -> Path:
    """Writes synthetic fastMRI into ``data_dir/fastmri``: volumes of 8 slices, ``num_train``
    training slices and ``num_test`` in each of validation and test (each split gets at least
    one volume), with ``meta.json`` and the content manifest; returns the folder."""
    directory = Path(data_dir) / NAME
    slices_per_volume = 8
    splits: dict[str, list[str]] = {}
    seed = 0
    for split, count, folder in (("train", num_train, TRAIN_DIR),
                                 ("validation", num_test, VAL_DIR),
                                 ("test", num_test, VAL_DIR)):
        splits[split] = []
        for index in range(max(1, -(-count // slices_per_volume))):
            slices = min(slices_per_volume, count - index * slices_per_volume) or 1
            name = f"{folder}/{split}_{index:03d}.h5"
            write_volume(directory / name, *synthetic_volume(slices, kspace_shape,
                                                             target_shape, seed))
            splits[split].append(name)
            seed += 1
    write_meta(directory, splits)
    content.write(directory, content.scan(directory, NAME, {"synthetic": True}))
    return directory
