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

Split sizes have one owner here too: ``num_train_examples`` and its siblings report the
official sizes (``official_split_sizes``) until the workload has read its prepared data, then
the prepared copy's (``_prepared_split_sizes``), which may be smaller (synthetic data, a
subset): an eval must not loop over examples that are not there. A generated dev dataset's
sizes are fixed, so its official sizes are the prepared ones.
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

    # The official example count of each split, reported until prepared data is read.
    official_split_sizes: ClassVar[Mapping[str, int]] = {}

    def __init__(self, *args: Any, workload_name: str | None = None, **settings: Any) -> None:
        super().__init__(*args)
        self._split_sizes: dict[str, int] | None = None
        self._split_sizes_dir: str | None = None
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

    def _prepared_split_sizes(self, data_dir: str | None) -> Mapping[str, int]:
        """The example count of each split of the prepared data in ``data_dir``; by default
        the official ones (a generated dataset, the same on every machine)."""
        del data_dir
        return self.official_split_sizes

    def _read_split_sizes(self, data_dir: str | None) -> None:
        """Reads the prepared split sizes, once per data dir; nothing to read for a workload
        without ``official_split_sizes`` (its sizes are fixed, or it overrides this)."""
        if not self.official_split_sizes:
            return
        if self._split_sizes is None or data_dir != self._split_sizes_dir:
            self._split_sizes = dict(self._prepared_split_sizes(data_dir))
            self._split_sizes_dir = data_dir

    def _split_size(self, split: str) -> int:
        """``split``'s example count: the prepared data's once read, else the official one."""
        return (self.official_split_sizes if self._split_sizes is None
                else self._split_sizes)[split]

    @property
    def num_train_examples(self) -> int:
        return self._split_size("train")

    @property
    def num_validation_examples(self) -> int:
        return self._split_size("validation")

    @property
    def num_test_examples(self) -> int | None:
        return self._split_size("test")

    def eval_model(self, global_batch_size: int, params: spec.ParameterContainer,
                   model_state: spec.ModelAuxiliaryState, rng: spec.RandomState, data_dir: str,
                   imagenet_v2_data_dir: str | None, global_step: int) -> dict[str, float]:
        """``spec.Workload.eval_model`` with the split sizes read first: it passes each split's
        size before the split is loaded, and the sizes follow the prepared data."""
        self._read_split_sizes(data_dir)
        return super().eval_model(global_batch_size, params, model_state, rng, data_dir,
                                  imagenet_v2_data_dir, global_step)

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
