"""Workloads: the framework-free registry and one folder per implemented workload.

`registry` holds every workload and variant as data (`get_workload`, `implemented`) and builds
one (`import_workload`); `check_workload` is `algoperf workloads check`."""

from algoperf.workloads.registry import (
    FRAMEWORKS,
    WORKLOADS,
    WorkloadInfo,
    get_rules,
    get_workload,
    implemented,
    import_workload,
)

__all__ = ["FRAMEWORKS", "WORKLOADS", "WorkloadInfo", "get_rules", "get_workload", "implemented",
           "import_workload"]
