"""Workloads: the framework-free registry and one folder per implemented workload."""
