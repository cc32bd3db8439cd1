"""AlgoPerf's per-trial JSON files: `hparams.json`, `flags_<p>.json`, `meta_data_<p>.json`.

``p`` is the preemption count (0 on a fresh run, +1 per resume). The files are what AlgoPerf
writes (``json.dumps(..., indent=2)``, no trailing newline, same key names and order) so its
tools read ours; each write is atomic (temp file + rename). Non-finite floats are spelled as
in the event log (`algoperf.logs.values`).

Meta data differs from AlgoPerf in two ways, on purpose:
- A workload attribute that raises when read is left out. AlgoPerf recorded the previous
  attribute's value under the failing name (e.g. ``workload.train_mean`` in its logs).
- GPU facts come from NVML (``nvidia-ml-py``, if installed) rather than GPUtil, with GPUtil's
  units: utilisation as a fraction, memory in MiB.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from algoperf.errors import UserError
from algoperf.logs.atomic import write_atomic
from algoperf.logs.values import json_safe

HPARAMS_FILENAME = "hparams.json"
_WORKLOAD_SKIP = frozenset({"param_shapes", "model_params_types"})

logger = logging.getLogger(__name__)


def flags_filename(preemption_count: int) -> str:
    return f"flags_{_check_count(preemption_count)}.json"


def meta_data_filename(preemption_count: int) -> str:
    return f"meta_data_{_check_count(preemption_count)}.json"


def _check_count(preemption_count: int) -> int:
    if not isinstance(preemption_count, int) or preemption_count < 0:
        raise ValueError(f"preemption_count must be an int >= 0, not {preemption_count!r}")
    return preemption_count


def _write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(json_safe(obj), indent=2, allow_nan=False))


def write_hparams(trial_dir: str | os.PathLike, hp: Any) -> Path:
    """Writes ``hparams.json``: the hyperparameters namedtuple (or a mapping) as a JSON object
    in field order."""
    fields = hp._asdict() if hasattr(hp, "_asdict") else dict(hp)
    return _write_json(Path(trial_dir) / HPARAMS_FILENAME, fields)


def read_hparams(trial_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The hyperparameters of ``hparams.json`` (None when the trial has none)."""
    path = Path(trial_dir) / HPARAMS_FILENAME
    try:
        hparams = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e}); fix or delete it") from None
    if not isinstance(hparams, dict):
        raise UserError(f"{path} must hold a JSON object of hyperparameters; fix or delete it")
    return hparams


def write_flags(trial_dir: str | os.PathLike, preemption_count: int, flags: Mapping) -> Path:
    """Writes ``flags_<preemption_count>.json``: the run's options, in the given order."""
    return _write_json(Path(trial_dir) / flags_filename(preemption_count), dict(flags))


def write_meta_data(
    trial_dir: str | os.PathLike, preemption_count: int, workload: Any, rng_seed: int | None
) -> Path:
    """Writes ``meta_data_<preemption_count>.json`` with `meta_data` of this moment."""
    path = Path(trial_dir) / meta_data_filename(preemption_count)
    return _write_json(path, meta_data(workload, rng_seed))


def meta_data(workload: Any, rng_seed: int | None) -> dict[str, Any]:
    """AlgoPerf's meta data: workload attributes, host utilisation, software, hardware and
    the seed, under AlgoPerf's key names and in its order."""
    gpu_utilisation, gpu_hardware = _gpu_facts()
    data = workload_properties(workload)
    data.update(host_utilisation())
    data.update(gpu_utilisation)
    data.update(software_info())
    data.update(cpu_info())
    data.update(gpu_hardware)
    if rng_seed is not None:
        data["rng_seed"] = rng_seed
    return data


def workload_properties(workload: Any) -> dict[str, Any]:
    """``workload.<name>`` for each public attribute whose value is an int, float, str or bool
    (in ``dir`` order, as AlgoPerf). Attributes that raise when read are left out."""
    properties = {}
    for name in dir(workload):
        if name.startswith("_") or name in _WORKLOAD_SKIP:
            continue
        try:
            value = getattr(workload, name)
        except Exception as e:  # any property may fail (e.g. NotImplementedError)
            logger.info("not recording workload.%s: %s: %s", name, type(e).__name__, e)
            continue
        if isinstance(value, (int, float, str, bool)):
            properties[f"workload.{name}"] = value
    return properties


def host_utilisation() -> dict[str, Any]:
    """Host CPU, memory, disk and network counters.

    ``mem.read_bytes_since_boot``/``mem.write_bytes_since_boot`` are disk I/O counters: the
    names are AlgoPerf's. Counters the host does not expose (e.g. in some containers) are
    left out.
    """
    data: dict[str, Any] = {
        "cpu.util.avg_percent_since_last": psutil.cpu_percent(interval=None),
    }
    freq = _quietly(psutil.cpu_freq)
    if freq is not None:
        data["cpu.freq.current"] = freq.current
    memory = psutil.virtual_memory()
    data["mem.total"] = memory.total
    data["mem.available"] = memory.available
    data["mem.used"] = memory.used
    data["mem.percent_used"] = memory.percent
    disk = _quietly(psutil.disk_io_counters)
    if disk is not None:
        data["mem.read_bytes_since_boot"] = disk.read_bytes
        data["mem.write_bytes_since_boot"] = disk.write_bytes
    net = _quietly(psutil.net_io_counters)
    if net is not None:
        data["net.bytes_sent_since_boot"] = net.bytes_sent
        data["net.bytes_recv_since_boot"] = net.bytes_recv
    return data


def software_info() -> dict[str, Any]:
    """OS, Python, and the git branch and commit of the harness source (when git works)."""
    data = {
        "os_platform": platform.platform(),
        "python_version": platform.python_version(),
        "python_compiler": platform.python_compiler(),
    }
    source_dir = Path(__file__).resolve().parent
    branch = _git(source_dir, "rev-parse", "--abbrev-ref", "HEAD")
    commit = _git(source_dir, "rev-parse", "HEAD")
    if branch and commit:
        data["git_branch"] = branch
        data["git_commit_hash"] = commit
    return data


def cpu_info() -> dict[str, Any]:
    """CPU model name and logical CPU count."""
    data: dict[str, Any] = {}
    model = _cpu_model_name()
    if model:
        data["cpu_model_name"] = model
    data["cpu_count"] = psutil.cpu_count()
    return data


def _quietly(read: Any) -> Any:
    try:
        return read()
    except (OSError, RuntimeError, NotImplementedError):
        return None


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _cpu_model_name() -> str | None:
    """The CPU model from /proc/cpuinfo, else from lscpu (AlgoPerf's source)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    if match := re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE):
        return match.group(1).strip()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"^Model name:\s*(.+)$", lscpu, re.MULTILINE)
    return match.group(1).strip() if match else None


def _gpu_facts() -> tuple[dict[str, Any], dict[str, Any]]:
    """(utilisation keys, hardware keys) for the GPUs NVML sees; two empty dicts when
    ``nvidia-ml-py`` is not installed, NVML cannot start, or there is no GPU."""
    try:
        import pynvml
    except ImportError:
        return {}, {}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        logger.info("no GPU information: %s", e)
        return {}, {}
    try:
        count = pynvml.nvmlDeviceGetCount()
        if count == 0:
            return {}, {}
        gpus = [_one_gpu(pynvml, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
        name = _text(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0)))
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
    except pynvml.NVMLError as e:
        logger.info("no GPU information: %s", e)
        return {}, {}
    finally:
        pynvml.nvmlShutdown()
    util: dict[str, Any] = {"gpu.count": count}
    for i, gpu in enumerate(gpus):
        util.update({f"gpu.{i}.{key}": value for key, value in gpu.items()})
    for key in gpus[0]:
        util[f"gpu.avg.{key}"] = sum(gpu[key] for gpu in gpus) / count
    return util, {"gpu_model_name": name, "gpu_count": count, "gpu_driver": driver}


def _one_gpu(pynvml: Any, handle: Any) -> dict[str, float]:
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    mib = 1024.0 * 1024.0
    return {
        "compute.util": pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0,
        "mem.util": memory.used / memory.total,
        "mem.total": memory.total / mib,
        "mem.used": memory.used / mib,
        "mem.free": memory.free / mib,
        "temp.current": float(
            pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        ),
    }


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
