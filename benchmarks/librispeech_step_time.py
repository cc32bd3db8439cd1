"""LibriSpeech step time and memory: one training step of ours against AlgoPerf's own code.

For ``librispeech_conformer`` and ``librispeech_deepspeech`` in JAX and PyTorch, the method of
``workload_step_time.py`` through ``saved_batch_step_time.py``'s saved-batch machinery
(AlgoPerf's NAdamW baseline loaded unmodified on both sides, each side in its own interpreter,
interleaved blocks of steps, median per step; ratio ours / AlgoPerf). The batch is built once
by our numpy pipeline (``input_pipeline.train_batches``) from ``--batch-size`` utterances of
``write_synthetic``'s data (16 kHz noise with a tone, 3/4 to all of ``--audio-samples``
samples, one-word transcripts of a few SentencePiece ids), padded as for training to
``--audio-samples`` (default 320,000, AlgoPerf's fixed length) and 256 ids, saved to a file
and converted by each side as its own input pipeline converts a batch: AlgoPerf's JAX queue
yields ``{'inputs': (audio, audio_paddings), 'targets': (ids, id_paddings)}`` as float32 numpy
arrays (its ``LibriSpeechDataset`` casts the ids to float32; a full batch gets no weights)
placed with the batch-dim sharding, its PyTorch one the same as lists of CPU float32 tensors
(``default_collate``); ours is the workload's ``_to_framework_batch`` (int32 ids, weights).
The transcripts' length matters only to the CTC loss (JAX: a fixed 256-label lattice either
way), a small part of a step over 500 output frames.
In JAX the baseline's jitted step compiles a second time on its second call, on both sides
(seen with ``jax_log_compiles``), so ``--warmup`` must stay at least 1.

Memory: each worker reports its resident set size (RSS) before the first step, its peak up
to the end of the warm-up (model init, compilation, untimed steps), and, after resetting the
peak (Linux ``/proc/self/clear_refs``), the peak over the timed steps: the host memory of a
training step. On the CPU the device memory is this host memory: parameters, optimizer state,
batch, activations and temporaries are all in the RSS, as are the libraries each process
imports (AlgoPerf's imports TensorFlow).

AlgoPerf's speech workloads import ``clu`` (their metrics bundle, built in the JAX workload's
constructor: ``pip install clu`` into its side venv) and ``tensorflow_text`` (their tokenizer
only, unused without a vocabulary path); when ``tensorflow_text`` cannot be imported the
driver puts an empty stand-in module in its place and says so.

Sides as ``workload_step_time.py`` prepares them:

    python benchmarks/librispeech_step_time.py \\
        --algoperf-repo /tmp/algoperf-src --algoperf-python /tmp/algoperf-side-venv/bin/python

Last line: ``step_time worst=<ratio>`` (ours / AlgoPerf, target <= 1.0).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import saved_batch_step_time as saved  # noqa: E402  (the saved-batch machinery)

wst = saved.wst

# The saved batch's flat arrays as the nested batch both pipelines yield.
SPEECH_BATCH = r"""
def speech_batch(b, ids_dtype):
    return {"inputs": (b["audio"], b["audio_paddings"]),
            "targets": (b["targets"].astype(ids_dtype), b["target_paddings"])}
"""

ALGOPERF_CONVERSION = SPEECH_BATCH + r"""
_algoperf_setup = side_setup

def side_setup(cfg):
    import types
    try:
        import tensorflow_text  # noqa: F401
        notes = []
    except ImportError as error:  # its metrics import it for the tokenizer only
        sys.modules["tensorflow_text"] = types.ModuleType("tensorflow_text")
        notes = [f"tensorflow_text not importable ({type(error).__name__}): an empty "
                 "stand-in module (its tokenizer only, unused without a vocabulary)"]
    side = _algoperf_setup(cfg)
    side["notes"] += notes
    if cfg["framework"] == "jax":
        import jax
        from algoperf import jax_sharding_utils
        sharding = jax_sharding_utils.get_batch_dim_sharding()

        def to_framework(b):
            return jax.device_put(speech_batch(b, np.float32), sharding)
    else:
        import torch

        def to_framework(b):
            nested = speech_batch(b, np.float32)
            return {key: [torch.as_tensor(x) for x in nested[key]]
                    for key in ("inputs", "targets")}
    side["to_framework"] = to_framework
    return side
"""

OUR_CONVERSION = SPEECH_BATCH + r"""
_our_setup = side_setup

def side_setup(cfg):
    side = _our_setup(cfg)
    side["to_framework"] = lambda b: side["workload"]._to_framework_batch(
        {**speech_batch(b, np.int32), "weights": b["weights"]})
    return side
"""


def write_batch(directory: Path, batch_size: int, audio_samples: int, seed: int) -> Path:
    """One training batch of our pipeline on synthetic utterances, as flat ``.npz`` arrays."""
    from algoperf.datasets import librispeech as librispeech_data
    from algoperf.workloads.librispeech_conformer import input_pipeline

    data = librispeech_data.write_synthetic(directory, num_train=batch_size, num_test=1,
                                            max_samples=audio_samples)
    ids = librispeech_data.split_ids(data, "train")
    batch = next(input_pipeline.train_batches(data, ids, batch_size, seed, audio_samples))
    (audio, audio_paddings), (targets, target_paddings) = batch["inputs"], batch["targets"]
    path = directory / "librispeech.npz"
    np.savez(path, audio=audio, audio_paddings=audio_paddings, targets=targets,
             target_paddings=target_paddings, weights=batch["weights"])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    saved.add_arguments(parser, warmup=1, repeats=3, block_seconds=1.0)
    parser.add_argument("--workloads", default="librispeech_conformer,librispeech_deepspeech")
    parser.add_argument("--batch-size", type=int, default=8, help="utterances per batch")
    parser.add_argument("--audio-samples", type=int, default=320_000,
                        help="padded audio length (AlgoPerf: 320,000 = 20 s)")
    args = saved.parse_args(parser)
    with tempfile.TemporaryDirectory(prefix="step-time-") as tmp:
        path = write_batch(Path(tmp), args.batch_size, args.audio_samples, args.seed)
        headline, results = saved.measure_saved(
            dict.fromkeys(args.workloads.split(","), path), args, ALGOPERF_CONVERSION,
            OUR_CONVERSION, Path(tmp))
    first = next(iter(results.values()))
    print(f"batch {args.batch_size} utterances padded to {args.audio_samples} samples, "
          f"AlgoPerf's NAdamW baseline, torch threads {args.torch_threads}, "
          f"XLA_FLAGS={args.xla_flags!r}, {args.repeats * args.processes} interleaved blocks "
          f"per side after 1 + {args.warmup} warm-up steps")
    for label, ready in first["ready"].items():
        print(f"  {label:<11} {wst.fmt_versions(ready)}  ({ready['python']})")
    for note in sorted({n for r in results.values() for n in r["ready"]["AlgoPerf"]["notes"]}):
        print(f"  AlgoPerf note: {note}")
    print("host RSS in MB (on the CPU also the device memory): before the first step, peak "
          "during the timed steps, and the process's peak up to the end of the warm-up "
          "(init, compilation)")
    print(f"{'workload/framework':<31}{'side':<12}{'steps':>6}{'median s':>10}{'min s':>8}"
          f"{'/AlgoPerf':>10}{'first s':>9}{'RSS MB':>8}{'step peak':>10}{'init peak':>10}")
    for (workload, framework), r in results.items():
        for k, label in enumerate(r["median"]):
            ready, memory = r["ready"][label], r["ready"][label]["memory"]
            ratio = r["median"][label] / r["median"]["AlgoPerf"]
            peak = (f"{r['peak_rss_mb'][label]:>10.0f}" if memory["peak_reset"]
                    else f"{'n/a':>10}")
            print(f"{f'{workload}/{framework}' if k == 0 else '':<31}{label:<12}"
                  f"{r['steps']:>6}{r['median'][label]:>10.2f}{r['min'][label]:>8.2f}"
                  f"{ratio:>10.3f}{ready['first_step_s']:>9.1f}{memory['setup_rss_mb']:>8.0f}"
                  f"{peak}{memory['maxrss_mb']:>10.0f}")
    saved.print_ratios(results, headline)


if __name__ == "__main__":
    main()
