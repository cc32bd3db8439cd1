"""Fingerprint speed: reading the fake 8x V100 DGX-1 through the project's NVML code.

What is timed is `take_fingerprint()` end to end, host part included: NVML init, the system
fields, 30 queries per GPU, NVLink probing (7 state queries and 6 remote-PCI reads per GPU),
the 8x8 common-ancestor and P2P matrices, reading the host (psutil, /proc, package metadata)
and shutdown, plus the digest. NVML itself is `FakeNvml` answering from the recorded machine,
so this measures our code's overhead; a real driver adds its own call latency (NVML calls take
microseconds each on a healthy system).

The first call in a process (what `algoperf run` pays once) is printed too.

Last line: ``fingerprint 8xV100 fake: median <seconds> s`` (target < 0.5 s).
"""

from __future__ import annotations

import argparse
import statistics
import time

from algoperf.hardware import take_fingerprint, use_nvml
from algoperf.hardware.fake_nvml import FakeNvml, load_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    fake = FakeNvml(load_machine("dgx1_v100x8"))
    times = []
    with use_nvml(fake):
        t0 = time.perf_counter()
        take_fingerprint().digest()  # the first call also fills the package-metadata caches
        first = time.perf_counter() - t0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fp = take_fingerprint()
            fp.digest()
            times.append(time.perf_counter() - t0)
    assert len(fp.gpus) == 8 and fp.topology["nvlink"].ok
    print(f"first call {first:.4f}s; repeats={args.repeats} min={min(times):.4f}s "
          f"max={max(times):.4f}s")
    print(f"fingerprint 8xV100 fake: median {statistics.median(times):.4f} s")


if __name__ == "__main__":
    main()
