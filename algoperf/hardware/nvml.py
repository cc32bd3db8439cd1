"""The one place that talks to NVML (nvidia-ml-py, module ``pynvml``).

`session` initialises NVML and shuts it down again; when NVML cannot start it raises
`NvmlUnavailable` with a kind (no binding, no driver library, driver not loaded, driver/library
version mismatch, no permission, no GPU) and one line saying what to do. Inside a session every
query goes through `Nvml.query`, which turns NVML's exceptions into tri-state readings and
decodes the ``bytes`` that older bindings return.

The NVML module is injectable: `use_nvml(module)` makes every session in this process use
``module`` instead of ``pynvml`` (tests pass `algoperf.hardware.fake_nvml.FakeNvml`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from algoperf.hardware.readings import Reading

NO_BINDING = "no_binding"
NO_LIBRARY = "no_library"
DRIVER_NOT_LOADED = "driver_not_loaded"
VERSION_MISMATCH = "version_mismatch"
NO_PERMISSION = "no_permission"
NO_GPU = "no_gpu"
INIT_FAILED = "init_failed"

MESSAGES = {
    NO_BINDING: "nvidia-ml-py (module pynvml) is not installed: pip install nvidia-ml-py",
    NO_LIBRARY: "no NVIDIA driver on this machine: NVML's library libnvidia-ml.so.1 was not "
                "found (inside a container, run it with the NVIDIA container runtime)",
    DRIVER_NOT_LOADED: "the NVIDIA driver is installed but not loaded: load its kernel module "
                       "(modprobe nvidia) or reboot",
    VERSION_MISMATCH: "the NVIDIA kernel driver and its NVML library have different versions, "
                      "usually after a driver update without a reboot: reboot the machine",
    NO_PERMISSION: "this user may not open the NVIDIA devices: check the permissions of "
                   "/dev/nvidia*",
    NO_GPU: "the NVIDIA driver is running but NVML sees no GPU",
}

_backend_lock = threading.Lock()
_backend: Any = None  # None: import pynvml


class NvmlUnavailable(Exception):
    """NVML cannot be used on this machine; ``kind`` is one of the module's kind constants."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@contextlib.contextmanager
def use_nvml(module: Any) -> Iterator[Any]:
    """Within the block, every `session` in this process uses ``module`` as NVML."""
    global _backend
    with _backend_lock:
        previous, _backend = _backend, module
    try:
        yield module
    finally:
        with _backend_lock:
            _backend = previous


def nvml_module() -> Any:
    """The NVML module in use: the injected one, else ``pynvml`` (NO_BINDING if absent)."""
    if _backend is not None:
        return _backend
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable(NO_BINDING, MESSAGES[NO_BINDING]) from None
    return pynvml


class Nvml:
    """An initialised NVML: `query` reads one field as a `Reading`, `call` lets errors raise."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.Error = module.NVMLError

    def constant(self, name: str, default: Any = None) -> Any:
        return getattr(self.module, name, default)

    def call(self, name: str, *args: Any) -> Any:
        return _plain(getattr(self.module, name)(*args))

    def query(self, name: str, *args: Any, pick: Callable[[Any], Any] | None = None) -> Reading:
        """``pynvml.<name>(*args)`` as a reading; ``pick`` extracts the field from a struct.

        NotSupported and FunctionNotFound (a driver too old for the call) and a binding without
        the function read as "not supported"; any other NVMLError as an error.
        """
        fn = getattr(self.module, name, None)
        if fn is None:
            return Reading.not_supported(f"{name} is not in this nvidia-ml-py")
        try:
            result = fn(*args)
            return Reading.of(_plain(pick(result) if pick else result))
        except self.Error as e:
            return self.reading_of_error(e)

    def reading_of_error(self, e: Exception) -> Reading:
        code = getattr(e, "value", None)
        if code in (self.constant("NVML_ERROR_NOT_SUPPORTED"),
                    self.constant("NVML_ERROR_FUNCTION_NOT_FOUND")):
            return Reading.not_supported(str(e))
        return Reading.error(f"{type(e).__name__}: {e}")

    def is_error(self, e: Exception, *names: str) -> bool:
        """Whether NVMLError ``e`` carries one of the codes ``NVML_ERROR_<name>``."""
        return getattr(e, "value", None) in {self.constant(f"NVML_ERROR_{n}") for n in names}


@contextlib.contextmanager
def session() -> Iterator[Nvml]:
    """An initialised NVML for the block; raises `NvmlUnavailable` when it cannot start."""
    module = nvml_module()
    nvml = Nvml(module)
    try:
        module.nvmlInit()
    except nvml.Error as e:
        raise _unavailable(nvml, e) from None
    try:
        yield nvml
    finally:
        try:
            module.nvmlShutdown()
        except nvml.Error:
            pass


def _unavailable(nvml: Nvml, e: Exception) -> NvmlUnavailable:
    kinds = (("LIBRARY_NOT_FOUND", NO_LIBRARY), ("DRIVER_NOT_LOADED", DRIVER_NOT_LOADED),
             ("LIB_RM_VERSION_MISMATCH", VERSION_MISMATCH), ("NO_PERMISSION", NO_PERMISSION))
    for code, kind in kinds:
        if nvml.is_error(e, code):
            return NvmlUnavailable(kind, MESSAGES[kind])
    return NvmlUnavailable(INIT_FAILED, f"NVML failed to start: {type(e).__name__}: {e}")


def _plain(value: Any) -> Any:
    """Plain JSON-able Python: bytes decoded (older bindings), tuples as lists."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
