"""LibriSpeech input throughput and memory: utterances/s of the speech input pipeline against
what AlgoPerf's Conformer needs on its reference machine.

Writes ``--utterances`` synthetic utterances of 20 s (320,000 samples, AlgoPerf's longest) in
the prepared layout (``algoperf.datasets.librispeech.write_synthetic``), then times training
batches of ``--batch-size`` from ``input_pipeline.train_batches`` (read the ``.npy`` pairs, pad
to 320,000 samples and 256 ids) in one process, after a first batch. Padding to 20 s is the
worst case: every utterance is read at its full size. Prints the peak resident memory of the
process (``ru_maxrss``) and, last, the ratio of the measured rate to the rate the reference
needs: AlgoPerf's batch of 256 every ``budget / step_hint`` seconds (58,015 s / 76,000 steps
under v0.6, an upper bound on its step time, so a lower bound on the rate it needs).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from algoperf.datasets import librispeech as librispeech_data
from algoperf.workloads import registry
from algoperf.workloads.librispeech_conformer import input_pipeline

REFERENCE_BATCH = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = librispeech_data.write_synthetic(
            Path(tmp), num_train=args.utterances, num_test=4,
            max_samples=librispeech_data.MAX_AUDIO_SAMPLES)
        ids = librispeech_data.split_ids(directory, "train")
        batches = input_pipeline.train_batches(directory, ids, args.batch_size, 0,
                                               librispeech_data.MAX_AUDIO_SAMPLES)
        next(batches)
        start = time.perf_counter()
        for _ in range(args.batches):
            next(batches)
        elapsed = time.perf_counter() - start
    rate = args.batches * args.batch_size / elapsed
    info = registry.get_workload("librispeech_conformer")
    needed = REFERENCE_BATCH / (info.max_allowed_runtime_sec / info.step_hint)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pipeline: {rate:.0f} utterances/s in one process, batch {args.batch_size}, "
          f"20 s utterances; peak host memory {peak_mb:.0f} MB")
    print(f"reference needs at least {needed:.0f} utterances/s (batch {REFERENCE_BATCH} every "
          f"{info.max_allowed_runtime_sec / info.step_hint:.3f} s)")
    print(f"librispeech_pipeline: {rate / needed:.2f}x the reference's need (one process)")


if __name__ == "__main__":
    main()
