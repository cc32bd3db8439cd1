"""Hardware fingerprint through NVML, reference profiles, and sampling during runs.

- `take_fingerprint` reads the GPUs through NVML and the host; every field is tri-state
  (value, not supported, error) and the config fields have a digest.
- `check_reference` compares the fingerprint with a reference profile before a run and
  refuses a mismatch (or, with allow_nonreference, marks the run non-certifiable).
- `HardwareSampler` writes clocks, throttle reasons, temperature and power into the event log
  during a trial (`trial_sampler`), or on the host of a sandboxed run into `HostSamples`, which
  the witness signs; `throttle_summary` reads them back for reports.
- `contention.ContentionMeter` reads how busy the host was over a trial's timed loop (other
  processes' CPU time, steal, load, CPU throttling) for its ``measurement_quality`` record.
"""

from algoperf.hardware.fingerprint import Fingerprint, take_fingerprint
from algoperf.hardware.nvml import NvmlUnavailable, use_nvml
from algoperf.hardware.readings import Reading
from algoperf.hardware.reference_profiles import (
    Difference,
    ReferenceCheck,
    ReferenceMismatch,
    check_reference,
    compare,
    compare_with,
    load_profile,
    profile_names,
)
from algoperf.hardware.sampling import (
    HOST_SAMPLES_ENV,
    SAMPLE_EVENT,
    HardwareSampler,
    HostSamples,
    ThrottleSummary,
    throttle_summary,
    trial_sampler,
)

__all__ = [
    "HOST_SAMPLES_ENV", "SAMPLE_EVENT", "Difference", "Fingerprint", "HardwareSampler",
    "HostSamples", "NvmlUnavailable", "Reading", "ReferenceCheck", "ReferenceMismatch",
    "ThrottleSummary", "check_reference", "compare", "compare_with", "load_profile",
    "profile_names", "take_fingerprint", "throttle_summary", "trial_sampler", "use_nvml",
]
