"""Container costs: cold build, rebuild with unchanged inputs, image sizes, and the extra time
from starting a run to its first training step in the sandbox against the same run on the host.

- cold build: `build_image(no_cache=True)` of the variant: every layer rebuilt from the
  wheelhouse (wheels already downloaded; the first download's time depends on the network and
  is printed separately when it happens).
- rebuild: the same call again with nothing changed (target <= 15 s).
- size: `docker image inspect` size of each variant's image on this engine (cpu target
  <= 2.5 GB); variants not built here are reported as such.
- start overhead: `algoperf run` and `algoperf docker run` of digits (PyTorch, one trial, one
  step), alternated `--repeats` times; each measures from launching the command to the t_wall
  of the trial's first eval event, which follows step 1 (target <= 3 s extra, medians). The
  image is verified before timing, as `docker run` does once per image.

Needs a Docker engine (.ci/docker-up) and the base image (`algoperf docker base`) or
`--base-image`. Last line: `container start_overhead_s=<x> rebuild_s=<y>`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from algoperf.containers import base, build, engine, variants, verify
from algoperf.logs.events import read_events

ROOT = Path(__file__).resolve().parent.parent
NADAMW = ROOT / "submissions" / "nadamw"


def quiet(_message: str) -> None:
    pass


def time_to_first_step(command: list[str], experiment_dir: Path) -> float:
    """Seconds from launching ``command`` to its first eval event (after step 1)."""
    start = time.time()
    subprocess.run(command, check=True, capture_output=True)
    events = next(experiment_dir.rglob("events.jsonl"))
    first_eval = next(r for r in read_events(events) if r["type"] == "eval")
    return first_eval["t_wall"] - start


def run_args(experiment_dir: Path) -> list[str]:
    return ["--submission", str(NADAMW / "submission_pytorch.py"), "--workload", "digits",
            "--framework", "pytorch", "--tuning-search-space",
            str(NADAMW / "tuning_search_space.json"), "--num-tuning-trials", "1", "--seed", "0",
            "--max-global-steps", "1", "--no-save-checkpoints", "--experiment-dir",
            str(experiment_dir)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="cpu")
    parser.add_argument("--base-image", default=base.DEFAULT_TAG)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true", help="Do not time a cold build.")
    args = parser.parse_args()

    client = engine.connect(timeout=3600)
    variant = variants.get_variant(args.variant)
    t0 = time.monotonic()
    image = build.build_image(client, variant, base_image=args.base_image, echo=quiet)
    print(f"first build call (downloads and build as needed): {time.monotonic() - t0:.1f}s")
    if not args.skip_cold:
        t0 = time.monotonic()
        image = build.build_image(client, variant, base_image=args.base_image, no_cache=True,
                                  echo=quiet)
        print(f"cold build (--no-cache, wheelhouse present): {time.monotonic() - t0:.1f}s")
    t0 = time.monotonic()
    again = build.build_image(client, variant, base_image=args.base_image, echo=quiet)
    rebuild = time.monotonic() - t0
    reused = "reused the image" if again.id == image.id else \
        "the source changed meanwhile, so the project layer was rebuilt"
    print(f"rebuild, unchanged inputs: {rebuild:.1f}s ({reused})")
    image = again
    for name in variants.all_variants():
        found = engine.find_labelled(client, build.LAST_LABEL, variant=name)
        size = f"{found.attrs['Size'] / 1e9:.2f} GB" if found else "not built here"
        print(f"image size {name}: {size}")

    if not verify.already_verified(image):
        verify.verify_image(client, image, echo=quiet)
    host, container = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            host.append(time_to_first_step(
                [sys.executable, "-m", "algoperf", "run", *run_args(Path(tmp) / "h")],
                Path(tmp) / "h"))
            container.append(time_to_first_step(
                [sys.executable, "-m", "algoperf", "docker", "run", "--image", image.id,
                 *run_args(Path(tmp) / "c")], Path(tmp) / "c"))
    h, c = statistics.median(host), statistics.median(container)
    print(f"start to first step: host {h:.2f}s, container {c:.2f}s (medians of "
          f"{args.repeats}; host {[round(x, 2) for x in host]}, container "
          f"{[round(x, 2) for x in container]})")
    print(f"container start_overhead_s={c - h:.2f} rebuild_s={rebuild:.1f}")


if __name__ == "__main__":
    main()
