"""ImageNet preparation end to end and the ImageNet input pipeline.

Preparation runs on small archives in the official formats, written here: a train tar of
per-class tars, a validation tar of ``ILSVRC2012_val_*.JPEG`` files, and an ImageNet-v2
``.tar.gz`` served by a real HTTP server on 127.0.0.1 (tests/dataset_fixtures.py). As in
tests/test_datasets.py, each test passes a manifest of the fixtures' own hashes; the
built-in one's published digests are checked against the fixtures only to see them refused.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import Fault, FixtureServer, write_manifest
from PIL import Image

from algoperf.datasets import content, fetch, imagenet, manifest, operations
from algoperf.errors import UserError
from algoperf.workloads.imagenet_resnet import input_pipeline as ip

FAST = fetch.Options(retries=3, backoff=0.01, timeout=10, jobs=2)
SYNSETS = imagenet.class_synsets()
TRUTH = imagenet.validation_synsets()
NUM_VALIDATION = 12
TRAIN_PER_CLASS = 4


def quiet(_: str) -> None:
    pass


def jpeg(seed: int, width: int, height: int, mode: str = "RGB", fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    data = imagenet.synthetic_jpeg(rng, seed, width, height)
    if mode == "RGB" and fmt == "JPEG":
        return data
    image = Image.open(io.BytesIO(data)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes], compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclasses.dataclass
class Archives:
    folder: Path
    train: dict[str, dict[str, bytes]]  # synset -> {name: bytes}
    validation: dict[str, bytes]
    test: dict[tuple[int, str], bytes]

    def files(self) -> dict[str, Path]:
        return {name: self.folder / name for name in (imagenet.TRAIN_ARCHIVE,
                                                      imagenet.VALIDATION_ARCHIVE,
                                                      imagenet.TEST_ARCHIVE)}


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Archives:
    """The three archives in their official formats, with the classes of the first
    validation images; one CMYK JPEG and one PNG named .JPEG, as the real train archive has."""
    folder = tmp_path_factory.mktemp("archives")
    synsets = sorted(set(TRUTH[:NUM_VALIDATION]))[:4]
    train = {}
    for c, synset in enumerate(synsets):
        train[synset] = {f"{synset}_{k}.JPEG": jpeg(10 * c + k, 60 + 7 * k, 50 + 5 * c)
                         for k in range(TRAIN_PER_CLASS)}
    train[synsets[0]][f"{synsets[0]}_0.JPEG"] = jpeg(1, 64, 48, mode="CMYK")
    train[synsets[1]][f"{synsets[1]}_1.JPEG"] = jpeg(2, 64, 48, fmt="PNG")
    inner = {f"{s}.tar": tar_bytes(images) for s, images in reversed(train.items())}
    (folder / imagenet.TRAIN_ARCHIVE).write_bytes(tar_bytes(inner))
    validation = {f"ILSVRC2012_val_{k:08d}.JPEG": jpeg(100 + k, 70, 40 + k)
                  for k in range(NUM_VALIDATION, 0, -1)}
    (folder / imagenet.VALIDATION_ARCHIVE).write_bytes(tar_bytes(validation))
    test = {(label, f"{h:040x}.jpeg"): jpeg(200 + label + h, 50, 50)
            for label in (0, 7, 999) for h in range(2)}
    (folder / imagenet.TEST_ARCHIVE).write_bytes(tar_bytes(
        {f"{imagenet.TEST_FOLDER}/{label}/{name}": data for (label, name), data in test.items()},
        compress=True))
    return Archives(folder, train, validation, test)


@pytest.fixture
def server():
    with FixtureServer() as s:
        yield s


def fixture_manifest(tmp_path: Path, archives: Archives, mirrors: list[str],
                     **extra) -> manifest.Manifest:
    path = write_manifest(tmp_path / "imagenet-fixture.json", "imagenet", archives.files(),
                          mirrors, **extra)
    return manifest.load_file(path)


def rows_by_name(split: imagenet.Split) -> dict[str, int]:
    names = (split.directory / imagenet.NAMES_FILE).read_text().split()
    return {name: k for k, name in enumerate(names)}


# Preparation.

def test_prepare_from_the_named_folder_keeps_every_jpeg_with_algoperfs_labels(tmp_path,
                                                                              archives):
    m = fixture_manifest(tmp_path, archives, [])
    data_dir = tmp_path / "data"
    result = operations.prepare(data_dir, "imagenet", m, raw_dir=archives.folder, echo=quiet)
    directory = data_dir / "imagenet"
    assert (directory / imagenet.CLASSES_FILE).read_text().split() == SYNSETS
    assert result.source["examples"] == {"train": 4 * TRAIN_PER_CLASS,
                                         "validation": NUM_VALIDATION, "test": 6}
    train = imagenet.load(directory, "train")
    names = rows_by_name(train)
    for synset, images in archives.train.items():
        for name, data in images.items():
            row = names[name]
            assert train.read(row) == data  # bytes unchanged, CMYK and PNG included
            assert train.labels[row] == SYNSETS.index(synset)
    assert list(train.labels) == sorted(train.labels)  # by class, then name
    validation = imagenet.load(directory, "validation")
    assert list(rows_by_name(validation)) == sorted(archives.validation)
    for name, row in rows_by_name(validation).items():
        number = int(name.removeprefix("ILSVRC2012_val_").removesuffix(".JPEG"))
        assert validation.labels[row] == SYNSETS.index(TRUTH[number - 1])
        assert validation.read(row) == archives.validation[name]
        entry = validation.index[row]
        assert (entry["width"], entry["height"]) == Image.open(io.BytesIO(
            archives.validation[name])).size
    test = imagenet.load(directory, "test")
    for (label, name), data in archives.test.items():
        row = rows_by_name(test)[f"{label}/{name}"]
        assert test.labels[row] == label and test.read(row) == data
    assert operations.verify(data_dir, "imagenet", m).manifest.root == result.root


def test_validation_labels_are_ilsvrc_ground_truth_in_sorted_synset_order():
    assert len(SYNSETS) == 1000 and SYNSETS == sorted(SYNSETS)
    assert len(TRUTH) == 50_000 and set(TRUTH) == set(SYNSETS)
    labels = [SYNSETS.index(s) for s in (TRUTH[0], TRUTH[1], TRUTH[2], TRUTH[-1])]
    # ILSVRC2012_val_00000001, _02, _03 and _50000, as in PyTorch's ImageFolder after valprep.
    assert labels == [65, 970, 230, 355]
    assert set(np.unique(TRUTH, return_counts=True)[1]) == {50}


def test_download_fetches_imagenet_v2_resuming_and_takes_the_manual_archives_from_downloads(
        tmp_path, archives, server):
    server.files["/v2/" + imagenet.TEST_ARCHIVE] = archives.files()[imagenet.TEST_ARCHIVE]
    server.add_fault("/v2/" + imagenet.TEST_ARCHIVE, Fault(cut_after=1000))
    m = fixture_manifest(tmp_path, archives, [f"{server.url}/v2/"])
    data_dir = tmp_path / "data"
    downloads = operations.downloads_dir(data_dir, "imagenet")
    downloads.mkdir(parents=True)
    for name in (imagenet.TRAIN_ARCHIVE, imagenet.VALIDATION_ARCHIVE):
        (downloads / name).write_bytes((archives.folder / name).read_bytes())
    operations.download(data_dir, "imagenet", m, options=FAST, echo=quiet)
    assert {path for _, path, _ in server.requests} == {"/v2/" + imagenet.TEST_ARCHIVE}
    ranges = [r for _, _, r in server.requests_for("/v2/" + imagenet.TEST_ARCHIVE)]
    assert ranges == [None, "bytes=1000-"]  # cut after 1,000 bytes, then resumed
    assert operations.status(data_dir, "imagenet", m).state == "prepared"


def test_missing_manual_archive_says_where_to_get_it(tmp_path, archives, server):
    server.files["/v2/" + imagenet.TEST_ARCHIVE] = archives.files()[imagenet.TEST_ARCHIVE]
    m = dataclasses.replace(fixture_manifest(tmp_path, archives, [f"{server.url}/v2/"]),
                            files=tuple(f for f in fixture_manifest(tmp_path, archives, []).files
                                        if f.name == imagenet.TEST_ARCHIVE))
    with pytest.raises(UserError, match="imagenet needs ILSVRC2012_img_train.tar in .*image-net"):
        operations.download(tmp_path / "data", "imagenet", m, options=FAST, echo=quiet)
    assert not (tmp_path / "data" / "imagenet").exists()


def test_a_manual_archive_is_checked_against_the_published_sha256_as_it_is_read(tmp_path,
                                                                                archives):
    only_v2 = dataclasses.replace(
        fixture_manifest(tmp_path, archives, []),
        files=tuple(f for f in fixture_manifest(tmp_path, archives, []).files
                    if f.name == imagenet.TEST_ARCHIVE))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError) as error:
        imagenet.prepare(archives.folder, out, only_v2, workers=1)
    message = str(error.value)
    assert "\n" not in message and "ILSVRC2012_img_train.tar is not the published archive" in \
        message and "1d675b47d978889d74fa0da5fadfb00e" in message  # image-net.org's md5


def test_a_train_archive_without_class_tars_is_refused(tmp_path, archives):
    folder = tmp_path / "raw"
    folder.mkdir()
    for name, path in archives.files().items():
        (folder / name).write_bytes(path.read_bytes())
    (folder / imagenet.TRAIN_ARCHIVE).write_bytes(tar_bytes({"n01440764_1.JPEG": jpeg(0, 9, 9)}))
    m = fixture_manifest(tmp_path, Archives(folder, {}, {}, {}), [])
    with pytest.raises(UserError, match="not one tar per ILSVRC2012 class"):
        operations.prepare(tmp_path / "data", "imagenet", m, raw_dir=folder, echo=quiet)
    assert not list((tmp_path / "data").glob(".imagenet.staging-*"))


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory, archives) -> Path:
    """The fixture archives with a train archive of 300 small classes: long enough to
    interrupt a preparation half way."""
    folder = tmp_path_factory.mktemp("many")
    inner = {f"{s}.tar": tar_bytes({f"{s}_{k}.JPEG": jpeg(c + k, 24, 20) for k in range(2)})
             for c, s in enumerate(SYNSETS[:300])}
    (folder / imagenet.TRAIN_ARCHIVE).write_bytes(tar_bytes(inner))
    for name in (imagenet.VALIDATION_ARCHIVE, imagenet.TEST_ARCHIVE):
        (folder / name).write_bytes((archives.folder / name).read_bytes())
    return folder


def test_an_interrupted_preparation_resumes_with_the_classes_converted_before(
        tmp_path, many_classes, capfd):
    fixture = write_manifest(tmp_path / "m.json", "imagenet",
                             {p.name: p for p in many_classes.iterdir()}, [])
    data_dir = tmp_path / "data"
    work = data_dir / ".imagenet.work" / "train"
    process = subprocess.Popen(
        [sys.executable, "-m", "algoperf", "datasets", "prepare", "imagenet", "--data-dir",
         str(data_dir), "--raw-dir", str(many_classes), "--manifest", str(fixture)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not list(work.glob("*.done.json")) and process.poll() is None:
            time.sleep(0.001)
        os.killpg(process.pid, signal.SIGSTOP)  # freeze it (and its workers) mid-way
        converted = len(list(work.glob("*.done.json")))
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert 0 < converted < 300, converted
    m = manifest.load_file(fixture)
    resumed = operations.prepare(data_dir, "imagenet", m, raw_dir=many_classes, echo=quiet)
    assert "classes were converted before" in capfd.readouterr().err
    assert not (data_dir / ".imagenet.work").exists()
    clean = operations.prepare(tmp_path / "clean", "imagenet", m, raw_dir=many_classes,
                               echo=quiet)
    assert resumed.root == clean.root  # the same bytes as an uninterrupted preparation


def test_work_left_by_another_archive_is_discarded(tmp_path, archives, capfd):
    m = fixture_manifest(tmp_path, archives, [])
    work = tmp_path / "data" / ".imagenet.work" / "train"
    work.mkdir(parents=True)
    (work / imagenet.WORK_SOURCE).write_text(json.dumps({"archive": "another"}))
    (work / f"00000{imagenet.SHARD_SUFFIX}").write_bytes(b"x")
    (work / f"00000{imagenet.SHARD_SUFFIX}{imagenet.DONE_SUFFIX}").write_text(
        json.dumps({"names": ["x.JPEG"], "rows": [[0, 1, 1, 1]]}))
    operations.prepare(tmp_path / "data", "imagenet", m, raw_dir=archives.folder, echo=quiet)
    assert "converted before" not in capfd.readouterr().err
    train = imagenet.load(tmp_path / "data" / "imagenet", "train")
    assert "x.JPEG" not in rows_by_name(train) and len(train) == 4 * TRAIN_PER_CLASS


def test_free_disk_space_is_checked_before_anything_is_written(tmp_path, archives):
    m = fixture_manifest(tmp_path, archives, [], prepared_bytes=10**18)
    with pytest.raises(UserError, match="not enough free disk space"):
        operations.prepare(tmp_path / "data", "imagenet", m, raw_dir=archives.folder,
                           echo=quiet)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".imagenet.lock"]


def test_cli_prepare_with_raw_dir_and_builtin_manifest_facts(tmp_path, archives):
    fixture = write_manifest(tmp_path / "m.json", "imagenet", archives.files(), [])
    done = subprocess.run([sys.executable, "-m", "algoperf", "datasets", "prepare", "imagenet",
                           "--data-dir", str(tmp_path / "d"), "--raw-dir", str(archives.folder),
                           "--manifest", str(fixture)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{imagenet.VALIDATION_ARCHIVE}: " in done.stderr and "sha256 ok" in done.stderr
    builtin = manifest.load("imagenet")
    assert builtin.implemented and [f.name for f in builtin.files] == [imagenet.TEST_ARCHIVE]
    assert builtin.mirrors[0].startswith("https://")
    assert imagenet.MANUAL_ARCHIVES[imagenet.TRAIN_ARCHIVE].size == 147_897_477_120


# The input pipeline.

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("synthetic")
    imagenet.write_synthetic(data_dir, num_train=48, num_validation=10, num_test=6)
    return data_dir


def test_write_synthetic_writes_the_prepared_layout_with_a_content_manifest(synthetic):
    stored = content.read(synthetic / "imagenet")
    assert stored.source == {"synthetic": True}
    assert not content.compare(stored, content.scan(synthetic / "imagenet", "imagenet"))
    assert ip.num_examples(synthetic, "train") == 48
    assert json.loads((synthetic / "imagenet" / imagenet.META_FILE).read_text())["examples"] == \
        {"train": 48, "validation": 10, "test": 6}


def test_train_batches_depend_on_seed_and_position_only_not_on_workers(synthetic):
    options = dict(seed=5, image_size=32, use_randaug=True, use_mixup=True)
    inline = ip.batches(synthetic, "train", 16, workers=0, **options)
    first = [next(inline) for _ in range(4)]
    assert inline.position == 4
    pooled = ip.batches(synthetic, "train", 16, workers=2, **options)
    resumed = ip.batches(synthetic, "train", 16, workers=0, start=3, **options)
    try:
        for a, b in zip(first, [next(pooled) for _ in range(4)], strict=True):
            assert np.array_equal(a["inputs"], b["inputs"])
            assert np.array_equal(a["targets"], b["targets"])
    finally:
        pooled.close()
    assert np.array_equal(next(resumed)["inputs"], first[3]["inputs"])
    other = next(ip.batches(synthetic, "train", 16, workers=0, **{**options, "seed": 6}))
    assert not np.array_equal(other["inputs"], first[0]["inputs"])


def test_each_epoch_is_a_permutation_without_the_remainder(synthetic):
    split = imagenet.load(synthetic / "imagenet", "train")
    stream = ip.batches(synthetic, "train", 20, seed=1, image_size=8, workers=0)
    batches = [next(stream) for _ in range(4)]  # 48 images: 2 batches of 20 per epoch
    for epoch in (batches[:2], batches[2:]):
        labels = np.concatenate([b["targets"] for b in epoch])
        assert len(labels) == 40 and all(b["weights"].sum() == 20 for b in epoch)
        assert set(np.unique(labels)) <= set(split.labels)
    assert not np.array_equal(batches[0]["targets"], batches[2]["targets"])


def test_eval_batches_are_resized_centre_crops_normalised_in_order_and_padded(synthetic):
    split = imagenet.load(synthetic / "imagenet", "validation")
    stream = list(ip.batches(synthetic, "validation", 4, repeat=False, image_size=24,
                             resize_size=28))
    assert [b["weights"].tolist() for b in stream][-1] == [1, 1, 0, 0]
    assert np.array_equal(np.concatenate([b["targets"] for b in stream])[:10], split.labels)
    image = Image.open(io.BytesIO(split.read(0))).convert("RGB")
    width, height = image.size
    scale = 28 / min(width, height)
    resized = image.resize((28, int(28 * height / width)) if width <= height
                           else (int(28 * width / height), 28), Image.Resampling.BILINEAR)
    top, left = round((resized.height - 24) / 2), round((resized.width - 24) / 2)
    expected = np.asarray(resized)[top:top + 24, left:left + 24].astype(np.float32)
    expected = (expected - np.float32(ip.MEAN)) / np.float32(ip.STDDEV)
    assert scale > 0 and np.allclose(stream[0]["inputs"][0], expected, atol=1e-5)
    assert stream[0]["inputs"].dtype == np.float32 and stream[0]["inputs"].shape == (4, 24, 24, 3)


def test_repeated_eval_passes_from_workers_are_identical_and_free_memory_between(synthetic):
    options = dict(image_size=16, resize_size=20)
    inline = list(ip.batches(synthetic, "validation", 4, repeat=False, workers=0, **options))
    stream = ip.batches(synthetic, "validation", 4, workers=2, **options)
    first = [next(stream) for _ in range(3)]
    assert stream._slots == []  # a pass is over: its shared-memory slots are freed
    second = [next(stream) for _ in range(3)]
    for a, b, c in zip(inline, first, second, strict=True):
        assert np.array_equal(a["inputs"], b["inputs"]) and np.array_equal(b["inputs"],
                                                                            c["inputs"])
        assert np.array_equal(a["weights"], c["weights"])
    stream.close()


def test_eval_train_is_a_seeded_subset_of_train_with_eval_transforms(synthetic):
    train = imagenet.load(synthetic / "imagenet", "train")
    one = list(ip.batches(synthetic, "eval_train", 8, seed=2, repeat=False, num_examples=20,
                          image_size=16, resize_size=18))
    again = list(ip.batches(synthetic, "eval_train", 8, seed=2, repeat=False, num_examples=20,
                            image_size=16, resize_size=18))
    assert sum(b["weights"].sum() for b in one) == 20 and len(one) == 3
    assert all(np.array_equal(a["inputs"], b["inputs"]) for a, b in zip(one, again, strict=True))
    labels = np.concatenate([b["targets"][b["weights"] > 0] for b in one])
    assert np.isin(labels, train.labels).all()


def test_random_resized_crop_box_follows_torchvisions_rules():
    rng = np.random.default_rng(0)
    for _ in range(500):
        left, top, w, h = ip.random_resized_crop_box(500, 375, rng)
        assert 0 <= left <= 500 - w and 0 <= top <= 375 - h
        assert 0.08 * 0.98 <= w * h / (500 * 375) <= 1.0
        assert 3 / 4 * 0.97 <= w / h <= 4 / 3 * 1.03
    # No try fits a 1000 x 10 strip: the centre crop at the widest allowed aspect.
    assert ip.random_resized_crop_box(1000, 10, rng) == (493, 0, 13, 10)
    assert ip.random_resized_crop_box(10, 1000, rng) == (0, 493, 10, 13)


def test_randaugment_ops_do_what_algoperf_does():
    rng = np.random.default_rng(0)
    pixels = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    shifted = np.asarray(ip.apply_op(image, "TranslateX", 10, rng))
    assert np.array_equal(shifted[:, 10:], pixels[:, :-10]) and (shifted[:, :10] == 128).all()
    sheared = np.asarray(ip.apply_op(image, "ShearY", 0.3, rng))
    assert np.array_equal(sheared[:, 0], pixels[:, 0])  # y' = y + 0.3 x: column 0 stays
    assert np.array_equal(np.asarray(ip.apply_op(image, "Solarize", 256, rng)), pixels)
    assert np.array_equal(np.asarray(ip.apply_op(image, "Invert", 0, rng)), 255 - pixels)
    added = np.asarray(ip.apply_op(image, "SolarizeAdd", 110, rng)).astype(int)
    low = pixels < 128
    assert np.array_equal(added[low], np.minimum(pixels[low].astype(int) + 110, 255))
    assert np.array_equal(added[~low], pixels[~low])
    cut = np.asarray(ip._cutout(Image.fromarray(np.zeros((200, 200, 3), np.uint8)), 40, rng))
    grey = np.argwhere((cut == 128).all(-1))
    assert len(grey) and (grey.max(0) - grey.min(0) + 1 <= 81).all()
    assert ip._magnitude("Contrast", 10) == pytest.approx(1.9)
    chosen = set()
    for seed in range(300):
        names = list(ip.RANDAUG_OPS)
        chosen.add(names[int(np.random.default_rng(seed).integers(16))])
    assert chosen == set(ip.RANDAUG_OPS) and len(chosen) == 16


def test_mixup_mixes_each_example_with_the_previous_one():
    rng = np.random.default_rng(3)
    inputs = np.random.default_rng(4).normal(size=(5, 2, 2, 3)).astype(np.float32)
    targets = np.array([0, 1, 2, 3, 999])
    mixed, soft = ip.mixup(inputs, targets, rng)
    weight = np.random.default_rng(3).beta(0.2, 0.2)
    assert np.allclose(mixed[1], weight * inputs[1] + (1 - weight) * inputs[0], atol=1e-6)
    assert np.allclose(mixed[0], weight * inputs[0] + (1 - weight) * inputs[4], atol=1e-6)
    assert soft.shape == (5, 1000) and np.allclose(soft.sum(1), 1)
    assert soft[0, 0] == pytest.approx(weight) and soft[0, 999] == pytest.approx(1 - weight)


def test_a_batch_larger_than_the_training_split_is_one_clear_line(synthetic):
    with pytest.raises(UserError, match="training batch size 49 must be between 1 and the 48"):
        ip.batches(synthetic, "train", 49)
    with pytest.raises(UserError, match="ImageNet is not prepared in"):
        ip.batches(synthetic / "nowhere", "validation", 4)
