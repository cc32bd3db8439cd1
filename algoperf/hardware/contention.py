"""How busy the host was while a trial trained: the readings behind `algoperf.logs.quality`.

`ContentionMeter` reads the host's counters when the timed loop starts and when it ends (two
reads, neither inside a timed step; no thread) and turns the difference into the
``measurement_quality`` record of the trial's ``run_end`` event:

- CPU time of the CPUs the run may use (its affinity), from the kernel's per-CPU counters
  (``/proc/stat`` via psutil): busy (user, nice, system, irq, softirq), idle, iowait, steal;
- this run's process tree's CPU time (psutil: the process, its live descendants and the
  children they reaped; under torchrun the launcher's tree, so the other ranks are not
  "other"). ``other_cpu_sec`` is busy time minus the tree's, so CPU-burning neighbours,
  parallel sweep jobs and other users show up, and the run's own data loaders do not;
- the 1-minute load average at the end; cgroup CPU-quota throttling (``nr_throttled`` over
  ``nr_periods`` in the run's ``cpu.stat``, v1 or v2) and thermal throttling events
  (``/sys/devices/system/cpu/cpu*/thermal_throttle/*_throttle_count``) where they exist.

Each reading is tri-state (`Reading`): a value, not supported (the OS does not report it),
or an error. A reading never raises into the run.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from algoperf.hardware.readings import Reading

CGROUP_ROOT = Path("/sys/fs/cgroup")
THERMAL = "/sys/devices/system/cpu/cpu{}/thermal_throttle/*_throttle_count"
_GUEST = ("guest", "guest_nice")  # already counted in user and nice


class _Got:
    """An internal reading: ``value``, or ``failed`` (the Reading to record instead)."""

    __slots__ = ("failed", "value")

    def __init__(self, fn) -> None:
        self.value, self.failed = None, None
        try:
            self.value = fn()
        except Exception as e:  # noqa: BLE001 - a reading never breaks a run
            self.failed = Reading.error(f"{type(e).__name__}: {e}")
            return
        if self.value is None:
            self.failed = Reading.not_supported()


def run_cpus() -> list[int] | None:
    """The CPUs this process may run on (None: every CPU, where affinity is not reported)."""
    try:
        return sorted(psutil.Process().cpu_affinity())
    except (AttributeError, NotImplementedError, OSError, psutil.Error):
        return None


def cpu_counters(cpus: Sequence[int] | None) -> dict[str, float]:
    """Seconds per kernel CPU-time field, summed over ``cpus`` (None: all)."""
    per_cpu = psutil.cpu_times(percpu=True)
    chosen = per_cpu if cpus is None else [per_cpu[i] for i in cpus if i < len(per_cpu)]
    fields = [f for f in per_cpu[0]._fields if f not in _GUEST]
    return {f: float(sum(getattr(c, f) for c in chosen)) for f in fields}


def tree_root() -> psutil.Process:
    """The process whose tree is this run: the torchrun launcher when it started several
    ranks here, else this process."""
    me = psutil.Process()
    if int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1) > 1:
        parent = me.parent()
        if parent is not None:
            return parent
    return me


def tree_cpu_sec(root: psutil.Process) -> float:
    """CPU seconds of ``root``, its live descendants and the children they reaped."""
    total = 0.0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        procs = [root]
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:  # ended meanwhile: its parent reaps it into children_*
            continue
        total += t.user + t.system + getattr(t, "children_user", 0.0) + getattr(
            t, "children_system", 0.0)
    return total


def _cgroup_cpu_stat() -> Path | None:
    """The ``cpu.stat`` with quota counters of this process's cgroup (v2 or v1), if any."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":  # v2 (unified)
            candidates += [CGROUP_ROOT / rel / "cpu.stat", CGROUP_ROOT / "unified" / rel /
                           "cpu.stat"]
        elif "cpu" in controllers.split(","):
            candidates += [CGROUP_ROOT / controllers / rel / "cpu.stat",
                           CGROUP_ROOT / "cpu" / rel / "cpu.stat"]
    for candidate in candidates:
        try:
            if "nr_periods" in candidate.read_text():
                return candidate
        except OSError:
            continue
    return None


def _throttle_counts(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    values = dict(line.split() for line in path.read_text().splitlines() if line.strip())
    return int(values["nr_periods"]), int(values["nr_throttled"])


def _thermal_events(cpus: Sequence[int] | None) -> int | None:
    numbers = cpus if cpus is not None else range(os.cpu_count() or 1)
    files = [f for c in numbers for f in glob.glob(THERMAL.format(c))]
    if not files:
        return None
    return sum(int(Path(f).read_text().strip() or 0) for f in files)


class ContentionMeter:
    """Readings at the start and the end of a timed loop; `record` is the difference."""

    def __init__(self) -> None:
        self.cpus = run_cpus()
        self._root = tree_root()
        self._cgroup = _cgroup_cpu_stat()
        self._start: dict[str, Any] | None = None

    def _read(self) -> dict[str, Any]:
        return {
            "t": time.monotonic(),
            "cpu": _Got(lambda: cpu_counters(self.cpus)),
            "own": _Got(lambda: tree_cpu_sec(self._root)),
            "throttle": _Got(lambda: _throttle_counts(self._cgroup)),
            "thermal": _Got(lambda: _thermal_events(self.cpus)),
        }

    def start(self) -> ContentionMeter:
        self._start = self._read()
        return self

    def record(self, step_times: Sequence[float] | np.ndarray, steps_to_target: int | None,
               ) -> dict[str, Any]:
        """The ``measurement_quality`` record from `start` until now (its fields are described
        in `algoperf.logs.quality`)."""
        if self._start is None:
            self.start()
        a, b = self._start, self._read()
        times = np.asarray(step_times, dtype=np.float64)
        record: dict[str, Any] = {
            "window_sec": round(b["t"] - a["t"], 6),
            "steps": int(times.size),
            "steps_to_target": steps_to_target,
            "median_step_sec": float(np.median(times)) if times.size else None,
            "cpus": len(self.cpus) if self.cpus is not None else psutil.cpu_count(),
        }
        record.update(_cpu_fields(a["cpu"], b["cpu"], a["own"], b["own"]))
        load = _Got(lambda: round(os.getloadavg()[0], 3))
        record["load_avg_1m"] = load.value if load.failed is None else load.failed.to_json()
        record["cpu_throttled_share"] = _diff(
            a["throttle"], b["throttle"],
            lambda x, y: round((y[1] - x[1]) / (y[0] - x[0]), 6) if y[0] > x[0] else 0.0)
        record["thermal_throttle_events"] = _diff(a["thermal"], b["thermal"],
                                                  lambda x, y: y - x)
        return record


def _diff(a: _Got, b: _Got, fn) -> Any:
    """``fn(a, b)`` of two readings, or the JSON of whichever failed."""
    failed = b.failed or a.failed
    return failed.to_json() if failed is not None else fn(a.value, b.value)


def _cpu_fields(cpu_a: _Got, cpu_b: _Got, own_a: _Got, own_b: _Got) -> dict[str, Any]:
    """CPU time available, the run's own, other processes' and stolen, over the window."""
    names = ("cpu_available_sec", "own_cpu_sec", "other_cpu_sec", "other_cpu_share",
             "steal_sec", "steal_share")
    failed = cpu_b.failed or cpu_a.failed
    if failed is not None:
        return dict.fromkeys(names, failed.to_json())
    d = {k: v - cpu_a.value.get(k, 0.0) for k, v in cpu_b.value.items()}
    total = sum(d.values())
    steal = d.get("steal")
    busy = total - d.get("idle", 0.0) - d.get("iowait", 0.0) - (steal or 0.0)
    fields: dict[str, Any] = {"cpu_available_sec": round(total, 3)}
    own_failed = own_b.failed or own_a.failed
    if own_failed is None:
        own = own_b.value - own_a.value
        other = max(0.0, busy - own)
        fields.update(own_cpu_sec=round(own, 3), other_cpu_sec=round(other, 3),
                      other_cpu_share=round(other / total, 4) if total > 0 else 0.0)
    else:
        fields.update(dict.fromkeys(("own_cpu_sec", "other_cpu_sec", "other_cpu_share"),
                                    own_failed.to_json()))
    if steal is None:  # only Linux reports it
        fields.update(dict.fromkeys(("steal_sec", "steal_share"),
                                    Reading.not_supported().to_json()))
    else:
        fields.update(steal_sec=round(steal, 3),
                      steal_share=round(steal / total, 4) if total > 0 else 0.0)
    return fields
