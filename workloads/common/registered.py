"""The base of every workload here: constants from its registry row, variants as settings.

A workload class names its base registry row (``workload_name``) and the settings a variant
may change (``variant_settings``, each a class attribute holding the base's value). The
registry builds a variant by passing its row's name and settings to the constructor
(``registry.import_workload``), so a variant is data -- the settings that differ -- not a
subclass. Targets, budget, eval period and step hint are read from the row of the name the
instance was built for.

A workload may also name ``reduced_settings``: constructor settings that make its inputs
smaller without changing a parameter of its model (ImageNet's 64 x 64 crops for 224 x 224),
where the architecture allows it. The CPU test suites build every row with them
(``import_reduced``); a training run never does.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

from algoperf import spec
from algoperf.workloads import registry


class RegisteredWorkload(spec.Workload):
    """A ``spec.Workload`` whose constants come from the registry row ``workload_name``."""

    workload_name: str  # the base row; an instance built for a variant holds the variant's
    variant_settings: ClassVar[tuple[str, ...]] = ()  # attributes a variant may set
    # Smaller inputs for the CPU test suites, same parameters (see the module docstring).
    reduced_settings: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, *args: Any, workload_name: str | None = None, **settings: Any) -> None:
        super().__init__(*args)
        known_settings = (*self.variant_settings, *self.reduced_settings)
        unknown = sorted(set(settings) - set(known_settings))
        if unknown:
            known = ", ".join(known_settings) or "none"
            raise TypeError(f"{type(self).__name__} has no variant setting "
                            f"{', '.join(unknown)}; settings: {known}")
        if workload_name is not None:
            self.workload_name = workload_name
        for name, value in settings.items():
            setattr(self, name, value)

    @functools.cached_property
    def _info(self) -> registry.WorkloadInfo:
        return registry.get_workload(self.workload_name)

    @property
    def target_metric_name(self) -> str:
        return self._info.target_metric_name

    @property
    def validation_target_value(self) -> float:
        return self._info.validation_target_value

    @property
    def test_target_value(self) -> float:
        return self._info.test_target_value

    @property
    def max_allowed_runtime_sec(self) -> float:
        return self._info.max_allowed_runtime_sec

    @property
    def eval_period_time_sec(self) -> float:
        # AlgoPerf's are whole seconds; digits evaluates every 0.25 s (see the registry).
        return self._info.eval_period_time_sec

    @property
    def step_hint(self) -> int:
        return self._info.step_hint

    def has_reached_validation_target(self, eval_result: dict[str, float]) -> bool:
        return self._info.reached(eval_result[f"validation/{self.target_metric_name}"],
                                  self.validation_target_value, strict=True)

    def has_reached_test_target(self, eval_result: dict[str, float]) -> bool:
        return self._info.reached(eval_result[f"test/{self.target_metric_name}"],
                                  self.test_target_value, strict=True)


def import_reduced(name: str, framework: str) -> spec.Workload:
    """Registry row ``name``'s ``framework`` workload built with its class's
    ``reduced_settings`` (none: as ``registry.import_workload`` builds it)."""
    info = registry.get_workload(name)
    cls = getattr(importlib.import_module(info.framework_module(framework)), info.class_name)
    return registry.import_workload(name, framework,
                                    **dict(getattr(cls, "reduced_settings", {})))
