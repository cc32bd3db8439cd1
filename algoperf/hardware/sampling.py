"""Hardware samples during a run, and what they say about throttling.

`HardwareSampler` runs in a background thread for the length of a trial: at its start, every
``interval_sec`` and at its end it appends a ``hardware_sample`` event with, per GPU, the SM and
memory clocks, the clock-event (throttle) reasons, temperature and power draw, plus the CPU
frequency. NVML calls release the GIL and a sample costs well under a millisecond per GPU, so
training steps are not slowed; `EventLog.append` is thread-safe within a process.

`throttle_summary` reads the samples back from an event log for reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import psutil

from algoperf.hardware import nvml as nvml_api
from algoperf.hardware.gpus import THROTTLE_REASONS, clock_event_names, clock_event_reasons
from algoperf.hardware.readings import Reading
from algoperf.logs.events import HARDWARE_SAMPLE

log = logging.getLogger(__name__)

SAMPLE_EVENT = HARDWARE_SAMPLE  # the event type is algoperf.logs.events
INTERVAL_SEC = 5.0


class HardwareSampler:
    """Appends `SAMPLE_EVENT` records to ``log`` from a daemon thread until `stop`.

    If the log is closed under it (a run that ended abnormally), the thread just ends.
    """

    def __init__(self, log: Any, interval_sec: float = INTERVAL_SEC) -> None:
        self.log = log
        self.interval_sec = interval_sec
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="algoperf-hardware-sampler",
                                        daemon=True)
        self.samples_written = 0

    def start(self) -> HardwareSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Takes a last sample and waits for the thread to end (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> HardwareSampler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        with contextlib.ExitStack() as stack:
            try:
                nvml = stack.enter_context(nvml_api.session())
                handles = [nvml.call("nvmlDeviceGetHandleByIndex", i)
                           for i in range(nvml.call("nvmlDeviceGetCount"))]
            except nvml_api.NvmlUnavailable:
                nvml, handles = None, []
            except Exception as e:  # noqa: BLE001 - sampling must never break a run
                log.warning("hardware sampling disabled: %s: %s", type(e).__name__, e)
                nvml, handles = None, []
            while True:
                stopping = self._stop.is_set()
                if not self._sample(nvml, handles) or stopping:
                    return
                self._stop.wait(self.interval_sec)

    def _sample(self, nvml: nvml_api.Nvml | None, handles: list[Any]) -> bool:
        """Writes one sample; False when sampling has to end (the log closed or failed)."""
        try:
            self.log.append(SAMPLE_EVENT, take_sample(nvml, handles))
        except ValueError:  # the log was closed: the trial is over
            return False
        except Exception as e:  # noqa: BLE001 - sampling must never break a run
            log.warning("hardware sampling stopped: %s: %s", type(e).__name__, e)
            return False
        self.samples_written += 1
        return True


def take_sample(nvml: nvml_api.Nvml | None, handles: list[Any]) -> dict[str, Any]:
    """One sample: per-GPU lists (index = NVML index) and the CPU frequency.

    ``throttled`` maps a GPU index to the throttle reasons it reported, and is left out when
    no GPU is throttled, so a healthy run's samples stay short.
    """
    gpus: dict[str, list[Any]] = {k: [] for k in ("sm_clock_mhz", "mem_clock_mhz",
                                                   "clock_event_reasons", "temperature_c",
                                                   "power_mw")}
    throttled: dict[str, list[str]] = {}
    for index, handle in enumerate(handles):
        assert nvml is not None
        sm, mem = nvml.constant("NVML_CLOCK_SM"), nvml.constant("NVML_CLOCK_MEM")
        reasons = clock_event_reasons(nvml, handle)
        readings = {
            "sm_clock_mhz": nvml.query("nvmlDeviceGetClockInfo", handle, sm),
            "mem_clock_mhz": nvml.query("nvmlDeviceGetClockInfo", handle, mem),
            "clock_event_reasons": reasons,
            "temperature_c": nvml.query("nvmlDeviceGetTemperature", handle,
                                        nvml.constant("NVML_TEMPERATURE_GPU")),
            "power_mw": nvml.query("nvmlDeviceGetPowerUsage", handle),
        }
        for key, reading in readings.items():
            gpus[key].append(reading.to_json())
        if reasons.ok:
            slow = [r for r in clock_event_names(reasons.value) if r in THROTTLE_REASONS]
            if slow:
                throttled[str(index)] = slow
    sample: dict[str, Any] = {"gpus": gpus if handles else {},
                              "cpu_freq_mhz": _cpu_freq().to_json()}
    if throttled:
        sample["throttled"] = throttled
    return sample


def _cpu_freq() -> Reading:
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, AttributeError):
        freq = None
    return Reading.of(round(freq.current, 1)) if freq else Reading.not_supported()


@dataclasses.dataclass(frozen=True)
class ThrottleSummary:
    """How many samples a trial's log holds, and in how many some GPU was throttled."""

    samples: int
    gpu_samples: int  # samples that had GPUs to read
    throttled_samples: int
    reasons: dict[str, int]  # reason -> samples in which some GPU reported it
    gpus: tuple[int, ...]  # GPUs that were throttled at least once
    max_temperature_c: float | None

    @property
    def throttled(self) -> bool:
        return self.throttled_samples > 0

    def text(self) -> str:
        if not self.gpu_samples:
            return f"no GPU samples ({self.samples} host samples)"
        temp = (f", max {self.max_temperature_c:g} C" if self.max_temperature_c is not None
                else "")
        if not self.throttled:
            return f"no throttling in {self.gpu_samples} GPU samples{temp}"
        reasons = ", ".join(f"{r} x{n}" for r, n in sorted(self.reasons.items()))
        gpus = ",".join(str(g) for g in self.gpus)
        return (f"THROTTLED in {self.throttled_samples} of {self.gpu_samples} GPU samples "
                f"(GPUs {gpus}: {reasons}){temp}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def throttle_summary(records: Iterable[Mapping[str, Any]]) -> ThrottleSummary:
    """Summarises the `SAMPLE_EVENT` records among ``records`` (an event log's records)."""
    samples = gpu_samples = throttled_samples = 0
    reasons: Counter[str] = Counter()
    gpus: set[int] = set()
    max_temp = None
    for record in records:
        if record.get("type") != SAMPLE_EVENT:
            continue
        data = record.get("data", {})
        samples += 1
        if data.get("gpus"):
            gpu_samples += 1
        temps = [t for t in data.get("gpus", {}).get("temperature_c", [])
                 if isinstance(t, int | float)]
        if temps:
            max_temp = max(temps) if max_temp is None else max(max_temp, *temps)
        throttled = data.get("throttled") or {}
        if throttled:
            throttled_samples += 1
            gpus.update(int(g) for g in throttled)
            reasons.update({r for names in throttled.values() for r in names})
    return ThrottleSummary(samples, gpu_samples, throttled_samples, dict(reasons),
                           tuple(sorted(gpus)), max_temp)
