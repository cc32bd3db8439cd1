"""ImageNet training input throughput: our pipeline against torchvision's, on the same JPEGs.

Writes ``--images`` photograph-sized JPEGs (500 x 375 and 375 x 500, about the median ImageNet
image, of smooth noisy patterns that compress and decode like photographs) once as an
``ImageFolder`` tree and once in our prepared layout (the same bytes in shards), then times
training batches -- decode, random-resized crop to 224, flip, normalise -- over all cores:

- ours: ``input_pipeline.batches(..., 'train')`` with one worker per core;
- torchvision: ``ImageFolder`` + ``DataLoader`` (as many workers, shuffled, drop_last) with
  ``RandomResizedCrop(224, (0.08, 1), (3/4, 4/3))``, ``RandomHorizontalFlip``, ``ToTensor``,
  ``Normalize`` -- AlgoPerf's PyTorch training transforms. torchvision runs in its own Python
  (``--torchvision-python``, default /tmp/tv-venv/bin/python) so that the project's torch is
  not changed; it prints its figure as JSON.

Both are timed after their first batch (worker start-up excluded) over the same number of
images. Before timing, our eval transform and our crop are compared pixel by pixel with
torchvision's on the same images, and our RandAugment ops with AlgoPerf's own PyTorch ones
(``--algoperf-src``: a tree of AlgoPerf's repository, run by path). Finally: how many cores
of this kind the reference machine needs to feed ResNet-50 at the step time of AlgoPerf's own
baseline run there.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from algoperf.datasets import content, imagenet, manifest, operations
from algoperf.hashing import file_sha256
from algoperf.workloads.imagenet_resnet import input_pipeline as ip

# AlgoPerf's JAX NAdamW baseline on the reference 8x V100 (algorithms/baselines/logs/
# external_tuning/baseline/study_0/imagenet_resnet_jax/imagenet_resnet_jax_01-26-2024-19-01-13.log
# in AlgoPerf's repository): 185,136 steps at batch 1,024 in 62,769 s of submission time.
REFERENCE_STEPS, REFERENCE_SECONDS, REFERENCE_BATCH = 185_136, 62_769.0, 1024
REFERENCE_CPUS = 32  # logical CPUs of the v0.6 reference machine (its meta_data_0.json)

TORCHVISION = r"""
import json, sys, time
import psutil
import torch
from torchvision import transforms
from torchvision.datasets import ImageFolder
root, batch, workers, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
train = transforms.Compose([transforms.RandomResizedCrop(224, scale=(0.08, 1.0),
                                                         ratio=(0.75, 4.0 / 3.0)),
                            transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                            normalize])
if __name__ == "__main__":
    loader = torch.utils.data.DataLoader(ImageFolder(root, transform=train), batch_size=batch,
                                         shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=True)
    me = psutil.Process()
    def cpu():
        return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children(recursive=True)])
    done, start = 0, None
    while done < batches:
        for inputs, targets in loader:
            if start is None:
                start, cpu_start = time.perf_counter(), cpu()
            else:
                done += 1
            if done == batches:
                break
    seconds, cpu_seconds = time.perf_counter() - start, cpu() - cpu_start
    print(json.dumps({"wall": done * batch / seconds, "cpu": done * batch / cpu_seconds}))
"""

COMPARE = r"""
import json, sys
import numpy as np
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as F
paths, boxes = json.loads(sys.argv[1]), json.loads(sys.argv[2])
evaluate = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
out = {"eval": [], "crop": []}
for path, (left, top, w, h, flip) in zip(paths, boxes):
    image = Image.open(path).convert("RGB")
    out["eval"].append(np.asarray(evaluate(image)).tolist())
    crop = F.resized_crop(image, top, left, h, w, [224, 224])
    out["crop"].append(np.asarray(F.hflip(crop) if flip else crop).tolist())
print(json.dumps(out))
"""


RANDAUGMENT = r"""
import importlib.util, json, sys, types
import numpy as np
from PIL import Image
from torchvision.transforms import InterpolationMode
source, image_path, out_path = sys.argv[1:4]
# AlgoPerf's randaugment.py imports its spec module for type hints only.
stub = types.ModuleType("algoperf")
stub.spec = types.SimpleNamespace(Tensor=object)
sys.modules["algoperf"], sys.modules["algoperf.spec"] = stub, stub.spec
spec = importlib.util.spec_from_file_location(
    "randaugment", source + "/algoperf/workloads/imagenet_resnet/imagenet_pytorch/randaugment.py")
ra = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ra)
image = Image.open(image_path).convert("RGB")
out = {}
for name, (magnitude, signed) in ra.ops_space().items():
    if name != "Cutout":  # drawn from numpy's global stream
        for sign in (1, -1) if signed else (1,):
            out[f"{name}:{sign}"] = np.asarray(ra._apply_op(
                image, name, float(magnitude) * sign, InterpolationMode.NEAREST, 128))
np.savez(out_path, **out)
"""


def compare_randaugment(python: str, source: Path, root: Path) -> tuple[int, int]:
    """(ops with a different pixel, ops compared): each deterministic RandAugment op at
    magnitude 10, both signs, against AlgoPerf's own PyTorch RandAugment on one image."""
    image_path, out_path = root / "randaugment.png", root / "randaugment.npz"
    rng = np.random.default_rng(2)
    ip.decode(imagenet.synthetic_jpeg(rng, 1, 224, 224)).save(image_path)
    subprocess.run([python, "-c", RANDAUGMENT, str(source), str(image_path), str(out_path)],
                   check=True, capture_output=True)
    theirs = np.load(out_path)
    image = ip.decode(image_path.read_bytes())
    differing = 0
    for key in theirs.files:
        name, sign = key.split(":")
        mine = ip.apply_op(image, name, ip._magnitude(name, 10) * int(sign), rng)
        differing += not np.array_equal(np.asarray(mine), theirs[key])
    return differing, len(theirs.files)


def write_images(root: Path, count: int, classes: int = 10) -> tuple[Path, Path]:
    """``count`` JPEGs as ``root/folder/<class>/<name>.JPEG`` and as prepared shards in
    ``root/prepared/imagenet``."""
    folder, prepared = root / "folder", root / "prepared" / imagenet.NAME
    rng = np.random.default_rng(0)
    per_class = count // classes
    rows, names = [], []
    for c in range(classes):
        images = []
        for k in range(per_class):
            width, height = (500, 375) if k % 3 else (375, 500)
            images.append((f"img_{c}_{k}.JPEG", imagenet.synthetic_jpeg(rng, c, width, height)))
        (folder / f"class_{c:02d}").mkdir(parents=True)
        for name, data in images:
            (folder / f"class_{c:02d}" / name).write_bytes(data)
        split_dir = prepared / "train"
        split_dir.mkdir(parents=True, exist_ok=True)
        shard_names, shard_rows = imagenet.write_shard(imagenet.shard_path(split_dir, c), images)
        index = np.zeros(len(images), imagenet.INDEX_DTYPE)
        index["shard"], index["label"] = c, c
        index["offset"], index["length"] = shard_rows[:, 0], shard_rows[:, 1]
        index["height"], index["width"] = shard_rows[:, 2], shard_rows[:, 3]
        rows.append(index)
        names += shard_names
    imagenet.write_index(prepared / "train", np.concatenate(rows), names)
    content.write(prepared, content.scan(prepared, imagenet.NAME, {"synthetic": True}))
    return folder, prepared.parent


def prepare_rate(root: Path, folder: Path) -> tuple[float, float, float]:
    """Archives in the official formats made of the same JPEGs (a train tar of class tars, a
    validation tar of the first 500, an ImageNet-v2 tar.gz of the next 200), prepared by
    ``algoperf.datasets`` with every core: (MB of archive/s, images/s, seconds)."""
    raw = root / "raw"
    raw.mkdir()
    paths = sorted(folder.rglob("*.JPEG"))
    synsets = imagenet.class_synsets()

    def tar(members: dict[str, bytes], mode: str = "w") -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode=mode) as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    by_class: dict[str, dict[str, bytes]] = {}
    for path in paths:
        synset = synsets[int(path.parent.name.removeprefix("class_"))]
        by_class.setdefault(synset, {})[f"{synset}_{path.stem}.JPEG"] = path.read_bytes()
    inner = {f"{synset}.tar": tar(members) for synset, members in by_class.items()}
    (raw / imagenet.TRAIN_ARCHIVE).write_bytes(tar(inner))
    (raw / imagenet.VALIDATION_ARCHIVE).write_bytes(tar(
        {f"ILSVRC2012_val_{k + 1:08d}.JPEG": p.read_bytes() for k, p in enumerate(paths[:500])}))
    (raw / imagenet.TEST_ARCHIVE).write_bytes(tar(
        {f"{imagenet.TEST_FOLDER}/{k % 1000}/{k}.jpeg": p.read_bytes()
         for k, p in enumerate(paths[500:700])}, "w:gz"))
    entries = [{"name": p.name, "size": p.stat().st_size, "sha256": file_sha256(p)}
               for p in sorted(raw.iterdir())]
    (root / "manifest.json").write_text(json.dumps({
        "name": "imagenet", "files": entries, "mirrors": [], "implemented": True,
        "workloads": ["imagenet_resnet"], "license": "benchmark fixture"}))
    m = manifest.load_file(root / "manifest.json")
    images = len(paths) + 700
    start = time.perf_counter()
    operations.prepare(root / "data", "imagenet", m, raw_dir=raw, echo=lambda _: None)
    seconds = time.perf_counter() - start
    total = sum(e["size"] for e in entries)
    return total / seconds / 1e6, images / seconds, seconds


def _tree_cpu_seconds() -> float:
    """CPU time of this process and all its children (the decoding workers)."""
    me = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children(recursive=True)])


def ours(data_dir: Path, batch: int, workers: int, batches: int) -> dict[str, float]:
    """Training images per second of wall time and per CPU-second of all processes."""
    stream = ip.batches(data_dir, "train", batch, seed=0, workers=workers)
    try:
        next(stream)
        start, cpu_start = time.perf_counter(), _tree_cpu_seconds()
        for _ in range(batches):
            next(stream)
        seconds, cpu_seconds = time.perf_counter() - start, _tree_cpu_seconds() - cpu_start
    finally:
        stream.close()
    return {"wall": batches * batch / seconds, "cpu": batches * batch / cpu_seconds}


def cpu_rate(data_dir: Path, count: int = 200) -> float:
    """Training images decoded and augmented per second of one core's CPU time (in this
    process): unlike wall time, not lowered by other jobs on a shared machine."""
    split = imagenet.load(data_dir / imagenet.NAME, "train")
    decoder = ip._Decoder(ip.Transform(train=True), 0)
    normalise = ip._Normaliser(ip.MEAN, ip.STDDEV, ip.IMAGE_SIZE)
    rows = np.arange(count) % len(split)
    pixels = np.empty((count, ip.IMAGE_SIZE, ip.IMAGE_SIZE, 3), np.uint8)
    start = time.process_time()
    decoder.decode_into(pixels, split, split.index[rows], np.arange(count))
    normalise(pixels)
    return count / (time.process_time() - start)


def compare(python: str, folder: Path) -> tuple[float, float]:
    """Largest pixel differences (0-255) between our eval transform and training crop (with
    its flip) and torchvision's on the same boxes, on four of the images."""
    paths = sorted(str(p) for p in folder.rglob("*.JPEG"))[:4]
    boxes, eval_ours, crop_ours = [], [], []
    for k, path in enumerate(paths):
        data = Path(path).read_bytes()
        rng = np.random.default_rng(k)  # train_image draws the box, then the flip
        box = ip.random_resized_crop_box(*ip.decode(data).size, rng)
        boxes.append((*box, bool(rng.random() < 0.5)))
        eval_ours.append(np.asarray(ip.eval_image(data, ip.Transform(train=False))))
        crop_ours.append(np.asarray(ip.train_image(data, np.random.default_rng(k),
                                                   ip.Transform(train=True))))
    done = subprocess.run([python, "-c", COMPARE, json.dumps(paths), json.dumps(boxes)],
                          capture_output=True, text=True, check=True)
    theirs = json.loads(done.stdout)
    diff = [max(np.abs(np.asarray(t, np.int16) - o.astype(np.int16)).max()
                for t, o in zip(theirs[key], mine, strict=True))
            for key, mine in (("eval", eval_ours), ("crop", crop_ours))]
    return float(diff[0]), float(diff[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--torchvision-python", default="/tmp/tv-venv/bin/python")
    parser.add_argument("--algoperf-src", type=Path, default=Path("/tmp/algoperf-src"),
                        help="AlgoPerf's source tree, for the RandAugment comparison "
                             "(skipped where absent)")
    args = parser.parse_args()
    workers = len(os.sched_getaffinity(0))
    root = Path(tempfile.mkdtemp(prefix="imagenet-bench-"))
    try:
        folder, data_dir = write_images(root, args.images)
        eval_diff, crop_diff = compare(args.torchvision_python, folder)
        print(f"pixel difference to torchvision (0-255): eval resize+crop {eval_diff:.0f}, "
              f"random-resized crop {crop_diff:.0f}")
        if (args.algoperf_src / "algoperf").is_dir():
            differing, compared = compare_randaugment(args.torchvision_python,
                                                      args.algoperf_src, root)
            print(f"RandAugment ops differing from AlgoPerf's PyTorch ones: {differing} of "
                  f"{compared} (each deterministic op at magnitude 10, both signs)")
        mb_s, images_s, seconds = prepare_rate(root, folder)
        print(f"prepare (archives in the official formats, {workers} workers): {mb_s:,.0f} MB/s, "
              f"{images_s:,.0f} images/s ({seconds:.1f} s)")
        per_core = cpu_rate(data_dir)
        mine = ours(data_dir, args.batch, workers, args.batches)
        done = subprocess.run([args.torchvision_python, "-c", TORCHVISION, str(folder),
                               str(args.batch), str(workers), str(args.batches)],
                              capture_output=True, text=True, check=True)
        theirs = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    needed = REFERENCE_BATCH * REFERENCE_STEPS / REFERENCE_SECONDS
    print(f"reference ResNet-50 step: {REFERENCE_SECONDS / REFERENCE_STEPS:.3f} s at batch "
          f"{REFERENCE_BATCH} = {needed:,.0f} images/s; at {per_core:,.0f} images/s per core "
          f"(one process, CPU time) that needs {needed / per_core:.1f} cores of this kind "
          f"({needed / mine['cpu']:.1f} at the pipeline's images per CPU-second); the "
          f"reference has {REFERENCE_CPUS} logical CPUs")
    print(f"images per CPU-second (all processes): algoperf {mine['cpu']:,.0f}, torchvision "
          f"{theirs['cpu']:,.0f}, ratio {mine['cpu'] / theirs['cpu']:.2f}")
    print(f"training images/s on {workers} cores, {args.batches} batches of {args.batch}: "
          f"algoperf {mine['wall']:,.0f}, torchvision {theirs['wall']:,.0f}, ratio "
          f"{mine['wall'] / theirs['wall']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
