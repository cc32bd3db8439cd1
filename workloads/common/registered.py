"""The base of every workload here: constants from its registry row, variants as settings.

A workload class names its base registry row (``workload_name``) and the settings a variant
may change (``variant_settings``, each a class attribute holding the base's value). The
registry builds a variant by passing its row's name and settings to the constructor
(``registry.import_workload``), so a variant is data -- the settings that differ -- not a
subclass. Targets, budget, eval period and step hint are read from the row of the name the
instance was built for.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from algoperf import spec
from algoperf.workloads import registry


class RegisteredWorkload(spec.Workload):
    """A ``spec.Workload`` whose constants come from the registry row ``workload_name``."""

    workload_name: str  # the base row; an instance built for a variant holds the variant's
    variant_settings: ClassVar[tuple[str, ...]] = ()  # attributes a variant may set

    def __init__(self, *args: Any, workload_name: str | None = None, **settings: Any) -> None:
        super().__init__(*args)
        unknown = sorted(set(settings) - set(self.variant_settings))
        if unknown:
            known = ", ".join(self.variant_settings) or "none"
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
        return self._beats(eval_result[f"validation/{self.target_metric_name}"],
                           self.validation_target_value)

    def has_reached_test_target(self, eval_result: dict[str, float]) -> bool:
        return self._beats(eval_result[f"test/{self.target_metric_name}"],
                           self.test_target_value)

    def _beats(self, value: float, target: float) -> bool:
        # The runner's comparisons are strict (scoring's are not, see registry.reached).
        return value > target if self._info.direction == registry.MAXIMIZE else value < target
