"""ogbg, fastmri and criteo1tb step time: one training step of ours against AlgoPerf's own
workload code, on a batch our pipeline built and saved.

``workload_step_time.py``'s method and workers (AlgoPerf's NAdamW baseline loaded unmodified on
both sides, each side in its own interpreter, interleaved blocks of steps, median per step;
see its docstring) on the workloads whose batches are not images and labels. The batch is
built once by our numpy pipeline from synthetic data of the real format and shapes -- ogbg:
``--batch-size`` molecule-like graphs, dynamically batched with AlgoPerf's budgets; fastmri:
``--mri-batch-size`` slices of 640 x 368 k-space reconstructed to 320 x 320; criteo1tb:
``--criteo-batch-size`` lines of synthetic day files parsed by the streaming TSV pipeline --
saved to a file and converted by each side as its own input queue converts its batches:
AlgoPerf's JAX ogbg queue yields a ``jraph.GraphsTuple`` of numpy arrays placed with the
batch-dim sharding, its PyTorch one a ``GraphsTuple`` of tensors and boolean weights;
fastmri's are dicts of arrays or tensors; criteo1tb's training queues yield float inputs
(N, 39) and float targets (N,), without weights in JAX and with float ones in PyTorch. Ours:
the workload's ``_to_framework_batch``.

criteo1tb is the full-size DLRM-small (a 4,194,304 x 128 table, 539M parameters): each worker
holds the parameters, NAdamW's two moments and the dense gradient, about 9-11 GB, so run it
alone with ``--processes 1`` on a 24 GB machine (its workers are started one after another
and stay alive: two at a time).

The saved-batch machinery (``add_arguments``, ``parse_args``, ``measure_saved``,
``print_ratios``: one batch file per workload, each side's conversion a driver fragment) also
serves ``librispeech_step_time.py``.

Sides as ``workload_step_time.py`` prepares them (AlgoPerf's side venv needs jraph, which
its pyproject lists; ours with AlgoPerf's pins additionally needs jraph and h5py):

    python benchmarks/saved_batch_step_time.py --algoperf-repo /tmp/algoperf-src \\
        --algoperf-python /tmp/algoperf-side-venv/bin/python

Last line: ``step_time worst=<ratio>`` (ours / AlgoPerf, target <= 1.0).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("workload_step_time",
                                               HERE / "workload_step_time.py")
wst = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wst)

# Both sides read the saved batch instead of the shared loop's random images and labels.
wst.STEP_LOOP = wst.STEP_LOOP.replace(
    'batch = side["to_framework"](fixed_batch(cfg))',
    'batch = side["to_framework"](saved_batch(cfg))')
LOAD_BATCH = r"""
def saved_batch(cfg):
    with np.load(cfg["batch_file"]) as arrays:
        return {key: arrays[key] for key in arrays.files}
"""

# AlgoPerf's conversions of a saved batch, after its side is set up as the shared driver does.
ALGOPERF_CONVERSION = r"""
_shared_setup = side_setup

def side_setup(cfg):
    import numpy as np
    side = _shared_setup(cfg)
    fields = ("nodes", "edges", "receivers", "senders", "n_node", "n_edge")
    if cfg["framework"] == "jax":
        import jax, jraph
        from algoperf import jax_sharding_utils
        sharding = jax_sharding_utils.get_batch_dim_sharding()

        def to_framework(b):
            if cfg["workload"] == "ogbg":
                graph = jraph.GraphsTuple(globals={}, **{f: b[f] for f in fields})
                b = {"inputs": graph, "targets": b["targets"], "weights": b["weights"]}
            elif cfg["workload"] == "criteo1tb":
                b = {"inputs": b["inputs"], "targets": b["targets"].reshape(-1)}
            return jax.device_put(b, sharding)
    else:
        import torch
        from jraph import GraphsTuple
        from algoperf.pytorch_utils import pytorch_setup
        device = pytorch_setup()[2]

        def to_framework(b):
            if cfg["workload"] == "ogbg":
                graph = GraphsTuple(globals={}, **{
                    f: torch.as_tensor(b[f].astype(np.int64) if b[f].dtype.kind == "i"
                                       else b[f], device=device) for f in fields})
                return {"inputs": graph, "targets": torch.as_tensor(b["targets"], device=device),
                        "weights": torch.as_tensor(b["weights"], dtype=torch.bool,
                                                   device=device)}
            if cfg["workload"] == "criteo1tb":
                b = {**b, "targets": b["targets"].reshape(-1)}
            return {k: torch.as_tensor(v, device=device) for k, v in b.items()}
    side["to_framework"] = to_framework
    return side
"""

OUR_CONVERSION = r"""
_shared_setup = side_setup

def side_setup(cfg):
    side = _shared_setup(cfg)
    if cfg["workload"] == "ogbg":
        from algoperf.workloads.ogbg.input_pipeline import GraphsTuple
        fields = ("nodes", "edges", "receivers", "senders", "n_node", "n_edge")

        def to_framework(b):
            graph = GraphsTuple(globals={}, **{f: b[f] for f in fields})
            return side["workload"]._to_framework_batch(
                {"inputs": graph, "targets": b["targets"], "weights": b["weights"]})

        side["to_framework"] = to_framework
    return side
"""


def write_ogbg(path: Path, graphs: int, seed: int) -> None:
    """One batch of ``graphs`` synthetic molecules, dynamically batched, as flat arrays."""
    from algoperf.datasets import ogbg as ogbg_data
    from algoperf.workloads.ogbg import input_pipeline as graph_pipeline

    molecules = ogbg_data.synthetic_graphs(4 * graphs, seed)
    batch = next(graph_pipeline.batches(molecules, range(len(molecules)), graphs))
    graph = batch["inputs"]
    flat = {f: getattr(graph, f) for f in ("nodes", "edges", "receivers", "senders",
                                           "n_node", "n_edge")}
    np.savez(path, targets=batch["targets"], weights=batch["weights"], **flat)


def write_fastmri(path: Path, slices: int, seed: int) -> None:
    """``slices`` synthetic knee slices through the per-slice pipeline, stacked."""
    from algoperf.datasets import fastmri as fastmri_data
    from algoperf.workloads.fastmri import input_pipeline as mri

    kspace, targets, volume_max = fastmri_data.synthetic_volume(slices, (640, 368), (320, 320),
                                                                seed)
    examples = [mri.process_slice(kspace[i], targets[i], volume_max,
                                  np.random.default_rng([seed, i])) for i in range(slices)]
    arrays = {key: np.stack([e[key] for e in examples]) for key in examples[0]}
    np.savez(path, weights=np.ones(slices, np.float32), **arrays)


def write_criteo1tb(path: Path, lines: int, seed: int) -> None:
    """The first training batch of ``lines`` lines of synthetic Criteo day files."""
    from algoperf.datasets import criteo1tb as criteo_data
    from algoperf.workloads.criteo1tb import input_pipeline as ctr

    directory = criteo_data.write_synthetic(path.parent / "data", num_train=lines, num_test=1)
    np.savez(path, **next(ctr.TrainBatches(criteo_data.split_files(directory, "train"),
                                           lines, seed)))


def write_batches(directory: Path, args: argparse.Namespace) -> dict[str, Path]:
    """One saved batch (``.npz``) of each of ``--workloads``, by workload."""
    writers = {"ogbg": (write_ogbg, args.batch_size),
               "fastmri": (write_fastmri, args.mri_batch_size),
               "criteo1tb": (write_criteo1tb, args.criteo_batch_size)}
    files = {}
    for workload in args.workloads.split(","):
        if workload not in writers:
            sys.exit(f"unknown workload {workload!r}; choose from {', '.join(writers)}")
        write, size = writers[workload]
        files[workload] = directory / f"{workload}.npz"
        write(files[workload], size, args.seed)
    return files


def add_arguments(parser: argparse.ArgumentParser, warmup: int, repeats: int,
                  block_seconds: float) -> None:
    """The options every saved-batch step-time benchmark shares, with its defaults."""
    parser.add_argument("--algoperf-repo", type=Path, default=os.environ.get("ALGOPERF_REPO"))
    parser.add_argument("--algoperf-python", default=os.environ.get("ALGOPERF_PYTHON"))
    parser.add_argument("--ours-python", default=os.environ.get("ALGOPERF_OURS_PYTHON"),
                        help="interpreter with AlgoPerf's pins and this project (optional)")
    parser.add_argument("--submission-dir", default="algorithms/baselines/external_tuning")
    parser.add_argument("--frameworks", default="jax,pytorch")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--processes", type=int, default=1, help="worker processes per side")
    parser.add_argument("--block-seconds", type=float, default=block_seconds)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--xla-flags", default=os.environ.get("XLA_FLAGS", ""))
    parser.add_argument("--seed", type=int, default=0)


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed options, AlgoPerf's checkout and interpreter required."""
    args = parser.parse_args()
    if not args.algoperf_repo or not args.algoperf_python:
        sys.exit("pass --algoperf-repo and --algoperf-python; see workload_step_time.py")
    args.algoperf_repo = args.algoperf_repo.resolve()
    wst.interpreters(args)
    return args


def measure_saved(batch_files: dict[str, Path], args: argparse.Namespace,
                  algoperf_conversion: str, our_conversion: str, cwd: Path
                  ) -> tuple[str, dict[tuple[str, str], dict]]:
    """``workload_step_time.measure`` of every workload (its saved batch file) and framework,
    each side converting the loaded batch with its conversion (a driver fragment redefining
    ``side_setup``); the headline side's label and the results by (workload, framework)."""
    hyperparameters = wst.first_hyperparameters(args.algoperf_repo, args.submission_dir)
    env = wst.worker_env(args.xla_flags)
    sides = {"AlgoPerf": (args.algoperf_python,
                          wst.ALGOPERF_DRIVER + algoperf_conversion + LOAD_BATCH,
                          args.algoperf_repo)}
    ours = wst.OUR_DRIVER + our_conversion + LOAD_BATCH
    if args.ours_python:
        sides["ours"] = (args.ours_python, ours, cwd)
    sides["ours .venv"] = (sys.executable, ours, cwd)
    base_cfg = {"repo": str(args.algoperf_repo), "seed": args.seed, "warmup": args.warmup,
                "torch_threads": args.torch_threads, "global_step": wst.GLOBAL_STEP,
                "hyperparameters": hyperparameters}
    results = {(workload, framework): wst.measure(workload, framework, sides, base_cfg, args,
                                                  env, batch={"batch_file": str(path)})
               for workload, path in batch_files.items()
               for framework in args.frameworks.split(",")}
    return ("ours" if args.ours_python else "ours .venv"), results


def print_ratios(results: dict[tuple[str, str], dict], headline: str) -> None:
    """The ``step_time`` lines: the headline side's median over AlgoPerf's, and the worst."""
    ratios = {f"{workload}/{framework}": r["median"][headline] / r["median"]["AlgoPerf"]
              for (workload, framework), r in results.items()}
    for pair, ratio in ratios.items():
        print(f"step_time {pair}={ratio:.3f}")
    print(f"step_time worst={max(ratios.values()):.3f}" if ratios else "step_time worst=nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, warmup=2, repeats=5, block_seconds=1.0)
    parser.add_argument("--workloads", default="ogbg,fastmri")
    parser.add_argument("--batch-size", type=int, default=32, help="ogbg graphs per batch")
    parser.add_argument("--mri-batch-size", type=int, default=2, help="fastmri slices")
    parser.add_argument("--criteo-batch-size", type=int, default=8192,
                        help="criteo1tb lines (AlgoPerf's reference batch: 262,144)")
    args = parse_args(parser)
    with tempfile.TemporaryDirectory(prefix="step-time-") as tmp:
        files = write_batches(Path(tmp), args)
        headline, results = measure_saved(files, args, ALGOPERF_CONVERSION, OUR_CONVERSION,
                                          Path(tmp))
    sizes = {"ogbg": f"ogbg batch {args.batch_size} graphs",
             "fastmri": f"fastmri batch {args.mri_batch_size} slices",
             "criteo1tb": f"criteo1tb batch {args.criteo_batch_size} lines"}
    print(", ".join(sizes[workload] for workload in files) + ", "
          f"AlgoPerf's NAdamW baseline, torch threads {args.torch_threads}, "
          f"{args.repeats * args.processes} interleaved blocks per side ({args.processes} "
          "processes)")
    for (workload, framework), r in results.items():
        for label, median in r["median"].items():
            print(f"{workload}/{framework:<8} {label:<11} {median * 1e3:9.2f} ms  "
                  f"{median / r['median']['AlgoPerf']:.3f} x AlgoPerf  "
                  f"({wst.fmt_versions(r['ready'][label])})")
    print_ratios(results, headline)


if __name__ == "__main__":
    main()
