"""Submission hash speed: `algoperf.submission.source_digest` on every reference submission.

What is timed is the hash `algoperf run` records in run_start (and that sweeps, docker run's
seal and `algoperf verify` recompute): finding the files it covers (docs/verify.md: the file,
or its whole folder when that folder is the submission's package) and hashing them, with a
warm page cache; median of --repeats calls in one process. For comparison, a copy of a
reference submission dropped straight into the temporary directory (a crowded folder that is
not a package) is timed too: it hashes itself alone.

Last line: ``submission hash: max <ms> ms, median <ms> ms over <n> reference submission files``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from algoperf.submission import source_digest, source_files

SUBMISSIONS = Path(__file__).resolve().parent.parent / "submissions"


def median_seconds(path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        source_digest(path)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    source_digest(next(SUBMISSIONS.glob("*/submission_*.py")))  # imports, caches: not timed
    medians = []
    for path in sorted(SUBMISSIONS.glob("*/submission_*.py")):
        files = source_files(path)
        size = sum(f.stat().st_size for f in files)
        seconds = median_seconds(path, args.repeats)
        medians.append(seconds)
        print(f"{path.relative_to(SUBMISSIONS.parent)}: {seconds * 1e3:.3f} ms "
              f"({len(files)} files, {size / 1024:.1f} KiB)")
    tmp = Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp(suffix=".py", prefix="submission_hash_", dir=tmp)
    try:
        os.write(fd, (SUBMISSIONS / "nadamw" / "submission_pytorch.py").read_bytes())
        os.close(fd)
        siblings = sum(len(files) for _, _, files in os.walk(tmp))
        print(f"a submission file in {tmp} ({siblings} files below it): "
              f"{median_seconds(Path(name), args.repeats) * 1e3:.3f} ms "
              f"({len(source_files(Path(name)))} file)")
    finally:
        os.unlink(name)
    print(f"submission hash: max {max(medians) * 1e3:.3f} ms, median "
          f"{statistics.median(medians) * 1e3:.3f} ms over {len(medians)} reference "
          "submission files")


if __name__ == "__main__":
    main()
