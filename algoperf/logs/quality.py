"""Measurement quality: what a trial's clock was up against, and when it is called contended.

Time to target is wall-clock time, so it measures the machine as much as the submission: the
same NAdamW setup on `digits` took 1.3 s to 13.7 s to its target on a busy machine. The runner
therefore records, per trial, beside the time to target (the ``measurement_quality`` object of
the ``run_end`` event, see `algoperf.hardware.contention`):

- ``steps_to_target`` (global step of the first eval meeting the validation target, or null),
  ``steps`` and ``median_step_sec`` (the median of the timed loop's per-step intervals);
- the host's contention over the timed loop (``window_sec`` of wall time, on ``cpus`` CPUs):
  ``other_cpu_share``, the share of the CPU time of the run's CPUs that other processes used
  (the machine's busy time minus this run's process tree's CPU time), ``steal_share`` (time a
  hypervisor gave to other guests), ``load_avg_1m`` at the end, ``cpu_throttled_share`` (cgroup
  quota periods in which the run was throttled) and ``thermal_throttle_events``.

Every reading is tri-state, as in `algoperf.hardware.readings`: a number, or
``{"status": "not_supported"}`` where the OS does not report it, or ``{"status": "error",
"detail": ...}``. An unknown reading never makes a trial contended.

The rule (`assess`): a trial is **contended** when, over its timed loop, other processes used
more than `OTHER_CPU_MAX` (25%) of its CPUs' time, or steal exceeded `STEAL_MAX` (5%), or cgroup
throttling hit more than `THROTTLED_MAX` (5%) of the quota periods, or the CPU reported any
thermal throttling. A loop shorter than `MIN_WINDOW_SEC` is too short to judge (unknown), as is
one where none of these is reported. Logs without the record (AlgoPerf's own) are "not
recorded", never flagged.

This module is pure (no psutil, no /proc): scoring and verification judge recorded numbers
with it, and `algoperf run` judges the numbers it just recorded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

RECORD_KEY = "measurement_quality"  # in run_end's data

OTHER_CPU_MAX = 0.25
STEAL_MAX = 0.05
THROTTLED_MAX = 0.05
MIN_WINDOW_SEC = 1.0

RULE = (f"contended: other processes used more than {OTHER_CPU_MAX:.0%} of the run's CPU time, "
        f"steal above {STEAL_MAX:.0%}, cgroup throttling in more than {THROTTLED_MAX:.0%} of "
        "periods, or any thermal throttling")

NOT_RECORDED = "not recorded"


def number(value: Any) -> float | None:
    """A recorded reading as a float; None when it is a status object (not supported, error),
    absent, or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class Assessment:
    """What the rule says about one trial's record. ``contended`` is None when it cannot say
    (no record, a loop too short, nothing reported); ``reasons`` name what exceeded a limit."""

    recorded: bool
    contended: bool | None
    reasons: tuple[str, ...] = ()
    why_unknown: str = ""

    @property
    def label(self) -> str:
        """A word for tables: contended, ok, unknown or not recorded."""
        if not self.recorded:
            return NOT_RECORDED
        return {True: "contended", False: "ok", None: "unknown"}[self.contended]

    def text(self) -> str:
        """One line: 'contended: ...', 'not contended', 'unknown: ...' or 'not recorded'."""
        if not self.recorded:
            return NOT_RECORDED
        if self.contended:
            return "contended: " + "; ".join(self.reasons)
        if self.contended is None:
            return f"contention unknown: {self.why_unknown}"
        return "not contended"


def _share(value: float) -> str:
    return f"{value:.0%}"


def assess(record: Mapping[str, Any] | None) -> Assessment:
    """Applies the rule (module docstring) to a ``measurement_quality`` record (None: absent)."""
    if not isinstance(record, Mapping):
        return Assessment(False, None, why_unknown=NOT_RECORDED)
    window = number(record.get("window_sec"))
    if window is None:
        return Assessment(True, None, why_unknown="no timed-loop window recorded")
    if window < MIN_WINDOW_SEC:
        return Assessment(True, None, why_unknown=f"the timed loop ran {window:.2f} s, under "
                          f"the {MIN_WINDOW_SEC:g} s needed to judge")
    other, steal = number(record.get("other_cpu_share")), number(record.get("steal_share"))
    throttled = number(record.get("cpu_throttled_share"))
    thermal = number(record.get("thermal_throttle_events"))
    reasons = []
    if other is not None and other > OTHER_CPU_MAX:
        reasons.append(f"other processes used {_share(other)} of the run's CPU time "
                       f"(limit {_share(OTHER_CPU_MAX)})")
    if steal is not None and steal > STEAL_MAX:
        reasons.append(f"steal time {_share(steal)} (limit {_share(STEAL_MAX)})")
    if throttled is not None and throttled > THROTTLED_MAX:
        reasons.append(f"cgroup CPU throttling in {_share(throttled)} of periods "
                       f"(limit {_share(THROTTLED_MAX)})")
    if thermal is not None and thermal > 0:
        reasons.append(f"{thermal:g} thermal throttling events")
    if reasons:
        return Assessment(True, True, tuple(reasons))
    if all(v is None for v in (other, steal, throttled, thermal)):
        return Assessment(True, None, why_unknown="the OS reported no CPU accounting")
    return Assessment(True, False)


def describe(record: Mapping[str, Any] | None) -> str:
    """The record in one line for people: steps, step time, contention readings, verdict."""
    if not isinstance(record, Mapping):
        return NOT_RECORDED
    parts = []
    to_target = record.get("steps_to_target")
    if isinstance(to_target, int) and not isinstance(to_target, bool):
        parts.append(f"{to_target} steps to target")
    step = number(record.get("median_step_sec"))
    if step is not None:
        parts.append(f"median step {step * 1e3:.3g} ms")
    readings = (("other processes", "other_cpu_share"), ("steal", "steal_share"))
    for label, key in readings:
        value = number(record.get(key))
        parts.append(f"{label} {_share(value)}" if value is not None else f"{label} unknown")
    load, cpus = number(record.get("load_avg_1m")), number(record.get("cpus"))
    if load is not None:
        parts.append(f"load {load:.1f}" + (f" on {cpus:g} CPUs" if cpus is not None else ""))
    return ", ".join(parts) + f": {assess(record).text()}"
