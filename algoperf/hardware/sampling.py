"""Hardware samples during a run, and what they say about throttling.

`HardwareSampler` runs in a background thread for the length of a trial: at its start, every
``interval_sec`` and at its end it appends a ``hardware_sample`` event with, per GPU, the SM and
memory clocks, the clock-event (throttle) reasons, temperature and power draw, plus the CPU
frequency. NVML calls release the GIL and a sample costs well under a millisecond per GPU, so
training steps are not slowed; `EventLog.append` is thread-safe within a process.

Where the samples come from depends on how the run is made. Under plain `algoperf run` the
runner samples in its own process into the trial's ``events.jsonl`` (`trial_sampler`). Under
``algoperf docker run`` the submission shares that process and can write that file, so the
sampler runs on the host instead, in the client process, into `HostSamples`, and the witness
signs the samples into its records (algoperf.verification.witness); the host tells the runner
in the sandbox to take none (`HOST_SAMPLES_ENV`).

`throttle_summary` reads the samples back from an event log for reports.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import psutil

from algoperf.hardware import nvml as nvml_api
from algoperf.hardware.gpus import THROTTLE_REASONS, clock_event_names, clock_event_reasons
from algoperf.hardware.readings import Reading
from algoperf.logs.events import HARDWARE_SAMPLE
from algoperf.logs.values import json_safe

log = logging.getLogger(__name__)

SAMPLE_EVENT = HARDWARE_SAMPLE  # the event type is algoperf.logs.events
INTERVAL_SEC = 5.0
# Set to "1" in the sandbox by algoperf docker run: the host samples, the runner must not.
HOST_SAMPLES_ENV = "ALGOPERF_HOST_SAMPLES"


class HardwareSampler:
    """Appends `SAMPLE_EVENT` records to ``log`` from a daemon thread until `stop`.

    ``log`` is anything with ``append(type, data)``: a trial's `EventLog`, or `HostSamples`.
    ``gpu_uuids`` limits the samples to those GPUs (a container's), in NVML index order; None
    samples every GPU. If the log is closed under it (a run that ended abnormally), the thread
    just ends.
    """

    def __init__(self, log: Any, interval_sec: float = INTERVAL_SEC,
                 gpu_uuids: tuple[str, ...] | None = None) -> None:
        self.log = log
        self.interval_sec = interval_sec
        self.gpu_uuids = gpu_uuids
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
                handles = _handles(nvml, self.gpu_uuids)
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


def _handles(nvml: nvml_api.Nvml, uuids: tuple[str, ...] | None) -> list[Any]:
    handles = [nvml.call("nvmlDeviceGetHandleByIndex", i)
               for i in range(nvml.call("nvmlDeviceGetCount"))]
    if uuids is None:
        return handles
    return [h for h in handles if nvml.call("nvmlDeviceGetUUID", h) in uuids]


def trial_sampler(log: Any) -> HardwareSampler | None:
    """The started sampler of a trial that writes ``log``, or None when the host samples
    (`HOST_SAMPLES_ENV`): a sample written from inside the sandbox is the submission's to
    forge, so there the runner writes none."""
    if os.environ.get(HOST_SAMPLES_ENV) == "1":
        return None
    return HardwareSampler(log).start()


class HostSamples:
    """Hardware samples taken in this process for a run that happens elsewhere (a container).

    Its `HardwareSampler` appends to it as to an event log; each sample is kept in memory as an
    event-shaped record (``type``, ``t_wall``, ``t_mono``, ``data``) with this process's clocks,
    the ones the witness times the run's events with. ``source`` says who sampled: this
    process's pid and PID namespace (the host's, not the sandbox's), the interval and GPUs.
    Use as a context manager around the run, or `start` and `stop`.
    """

    def __init__(self, interval_sec: float = INTERVAL_SEC,
                 gpu_uuids: tuple[str, ...] | None = None) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.sampler = HardwareSampler(self, interval_sec, gpu_uuids)
        self.source = {"pid": os.getpid(), "pid_namespace": _pid_namespace(),
                       "interval_sec": interval_sec,
                       "gpu_uuids": list(gpu_uuids) if gpu_uuids is not None else None}

    def append(self, type: str, data: Mapping[str, Any]) -> dict[str, Any]:
        record = {"type": type, "t_wall": time.time(), "t_mono": time.monotonic(),
                  "data": json_safe(data)}
        with self._lock:
            self.records.append(record)
        return record

    def start(self) -> HostSamples:
        self.sampler.start()
        return self

    def stop(self) -> None:
        """Takes the last sample and ends the sampler (idempotent)."""
        self.sampler.stop()

    def __enter__(self) -> HostSamples:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def around(self, first_mono: float, last_mono: float) -> list[dict[str, Any]]:
        """The samples that span ``first_mono``..``last_mono`` (host monotonic times): those
        taken between them plus the last one before and the first one after, so a trial's
        share of a run's samples brackets the trial."""
        with self._lock:
            records = list(self.records)
        times = [r["t_mono"] for r in records]
        start = max(0, bisect.bisect_right(times, first_mono) - 1)
        end = bisect.bisect_left(times, last_mono) + 1
        return records[start:end]


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


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
