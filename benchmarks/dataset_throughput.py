"""Dataset throughput: download over loopback against a plain curl of the same file, and
prepare throughput of mnist and cifar10 at full size.

The files are fixtures in the real formats and of the real sizes (tests/dataset_fixtures.py):
a CIFAR-10 python archive of 50,000 + 10,000 random-pixel images (which compress as badly as
the photographs: about 185 MB against the real 170 MB), and the four MNIST files with sparse
random strokes (about 12 MB compressed against the real 11.6 MB), served by the tests' HTTP
server, which sends files with sendfile(2). Download: the best of
three `algoperf.datasets.fetch` downloads of the CIFAR archive (sha256 checked, renamed into
place) against the best of three `curl -o` of the same URL. Prepare: the best of three
preparations from the verified raw files (hash check of the raw files, parse, write arrays,
content manifest), in MB of raw download per second.

Usage: python benchmarks/dataset_throughput.py   (the last line prints the figures)
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import numpy as np  # noqa: E402
from dataset_fixtures import FixtureServer, cifar_archive, write_manifest  # noqa: E402

from algoperf.datasets import fetch, manifest, operations  # noqa: E402
from algoperf.datasets import mnist as mnist_data  # noqa: E402

REPEATS = 3


def best_of(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def noisy_mnist() -> dict[str, bytes]:
    """Full-size MNIST files whose images are sparse random strokes in the central 20x20."""
    random = np.random.RandomState(0)
    files = {}
    for part, count in (("train", 60_000), ("test", 10_000)):
        images = np.zeros((count, 28, 28), np.uint8)
        strokes = random.randint(128, 256, (count, 20, 20)).astype(np.uint8)
        images[:, 4:24, 4:24] = np.where(random.random_sample((count, 20, 20)) < 0.4,
                                         strokes, 0)
        images_name, labels_name = mnist_data.FILES[part]
        files[images_name] = mnist_data.idx_gz(images)
        files[labels_name] = mnist_data.idx_gz(random.randint(0, 10, count).astype(np.uint8))
    return files


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dataset-bench-") as tmp_name:
        tmp = Path(tmp_name)
        archive = tmp / "cifar-10-python.tar.gz"
        cifar_archive(archive, per_batch=10_000, num_test=10_000, noise=True)
        size = archive.stat().st_size
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        with FixtureServer({"/cifar/cifar-10-python.tar.gz": archive}) as server:
            url = f"{server.url}/cifar/cifar-10-python.tar.gz"
            dest = tmp / "dl" / archive.name
            dest.parent.mkdir()

            def ours() -> None:
                dest.unlink(missing_ok=True)
                fetch.Fetcher(fetch.Options()).fetch(fetch.Job((url,), dest, size, digest))

            def curl() -> None:
                subprocess.run(["curl", "-sS", "-f", "-o", str(tmp / "curl.bin"), url],
                               check=True)

            ours_s, curl_s = best_of(ours), best_of(curl)

        raw_mnist = tmp / "raw-mnist"
        raw_mnist.mkdir()
        mnist = noisy_mnist()
        for name, data in mnist.items():
            (raw_mnist / name).write_bytes(data)
        plans = {
            "mnist": (raw_mnist, write_manifest(tmp / "mnist.json", "mnist", mnist, [])),
            "cifar10": (dest.parent, write_manifest(tmp / "cifar10.json", "cifar10",
                                                    {archive.name: archive}, [])),
        }
        prepare_rate = {}
        for name, (raw_dir, manifest_path) in plans.items():
            m = manifest.load_file(manifest_path)
            data_dir = tmp / f"data-{name}"

            def prepare(m=m, raw_dir=raw_dir, data_dir=data_dir, name=name) -> None:
                shutil.rmtree(data_dir, ignore_errors=True)
                operations.prepare(data_dir, name, m, raw_dir=raw_dir, echo=lambda _: None)

            seconds = best_of(prepare)
            prepare_rate[name] = (m.download_bytes / 1e6 / seconds, seconds)
    images_per_sec = {"mnist": 70_000 / prepare_rate["mnist"][1],
                      "cifar10": 60_000 / prepare_rate["cifar10"][1]}

    mb = size / 1e6
    print(f"download {mb:.0f} MB over loopback: algoperf {mb / ours_s:.0f} MB/s "
          f"({ours_s:.2f} s), curl {mb / curl_s:.0f} MB/s ({curl_s:.2f} s), "
          f"ratio {curl_s / ours_s:.2f}; prepare (MB of download/s): mnist "
          f"{prepare_rate['mnist'][0]:.0f} MB/s ({prepare_rate['mnist'][1]:.2f} s, "
          f"{images_per_sec['mnist']:,.0f} images/s), cifar10 "
          f"{prepare_rate['cifar10'][0]:.0f} MB/s ({prepare_rate['cifar10'][1]:.2f} s, "
          f"{images_per_sec['cifar10']:,.0f} images/s)")


if __name__ == "__main__":
    main()
