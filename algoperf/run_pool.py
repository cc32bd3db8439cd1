"""Several runs at once on one machine, each in its own process pinned to its own CPU.

`algoperf demo` trains many small (algorithm, workload) runs that each use one core well; on a
2-core machine running them one at a time leaves a core idle. `run_all` runs up to ``jobs``
of them at once: each worker process is pinned to one CPU of this process's affinity (so its
trials' contention readings, which cover the run's CPUs, see the neighbour only if it strays
onto that CPU), with one PyTorch thread unless ``OMP_NUM_THREADS`` says otherwise, and sends
its trials' progress back to one `LiveProgress` table (a row per running run and trial; a
finished run becomes one line above it). With
``jobs=1`` the runs go one after another in this process, as `algoperf run` would.

Workers are started with ``spawn``: a forked child of a process that has started JAX's or
PyTorch's threads can deadlock.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import queue as queue_module
from collections.abc import Sequence
from typing import Any

from algoperf.progress import LiveProgress
from algoperf.runner import RunConfig, Snapshot, TrialResult, run

POLL_SEC = 0.1

_events: Any = None  # the worker's queue to the parent, set by _start_worker


def usable_cpus() -> list[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this OS: count them
        return list(range(os.cpu_count() or 1))


def single_threaded_pytorch() -> None:
    """One intra-op thread for the dev models, unless the user chose (OMP_NUM_THREADS).

    They are too small to gain from more, and on a shared 2-core machine PyTorch's threads
    mostly wait for each other: measured here, a charlm step took 0.71 s with 2 threads and
    0.058 s with one under load.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


class _Forward:
    """A runner Observer in a worker: sends each call to the parent, tagged with its run."""

    def __init__(self, label: str) -> None:
        self.label = label

    def trial_started(self, study: int, trial: int, num_trials: int, hyperparameters) -> None:
        _events.put((self.label, "trial_started", (study, trial, num_trials, None)))

    def progress(self, snapshot: Snapshot) -> None:
        _events.put((self.label, "progress", (snapshot,)))

    def trial_finished(self, result: TrialResult) -> None:
        _events.put((self.label, "trial_finished", (result,)))


def _start_worker(cpus: Any, events: Any) -> None:
    """Pins this worker to a CPU nobody else took and keeps the queue to the parent."""
    global _events
    _events = events
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpus.get()})


def _run_in_worker(label: str, config: RunConfig) -> list[TrialResult]:
    if config.framework == "pytorch":
        single_threaded_pytorch()
    return run(config, _Forward(label))


def _drain(events: Any, progress: LiveProgress, wait: float, retired: set[str]) -> None:
    """Hands every queued worker event to its run's rows of ``progress``; drops the late
    ones of runs already ``retired`` (a worker's queue can lag behind its result)."""
    try:
        label, method, args = events.get(timeout=wait)
        while True:
            if label not in retired:
                getattr(progress.run_view(label), method)(*args)
            label, method, args = events.get_nowait()
    except queue_module.Empty:
        pass


def run_all(runs: Sequence[tuple[str, RunConfig]], jobs: int,
            progress: LiveProgress) -> dict[str, list[TrialResult]]:
    """Runs every (label, config) of ``runs``, ``jobs`` at a time (at most one per usable CPU);
    returns each label's trial results. A run that raises (a refused configuration: failed
    trials are results, not errors) cancels the runs not yet started and is re-raised once
    the running ones end."""
    cpus = usable_cpus()
    jobs = max(1, min(jobs, len(cpus), len(runs)))
    if jobs == 1:
        results = {}
        for label, config in runs:
            if config.framework == "pytorch":
                single_threaded_pytorch()
            results[label] = run(config, progress.run_view(label))
            progress.retire(label, results[label])
        return results
    context = multiprocessing.get_context("spawn")
    cpu_queue, events = context.Queue(), context.Queue()
    for cpu in cpus[:jobs]:
        cpu_queue.put(cpu)
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_start_worker,
            initargs=(cpu_queue, events)) as pool:
        futures = {pool.submit(_run_in_worker, label, config): label for label, config in runs}
        retired: set[str] = set()
        try:
            pending = set(futures)
            while pending:
                _drain(events, progress, POLL_SEC, retired)
                done = {f for f in pending if f.done()}
                for future in done:
                    progress.retire(futures[future], future.result())  # or its error
                    retired.add(futures[future])
                pending -= done
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return {label: future.result() for future, label in futures.items()}
