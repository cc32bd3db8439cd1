"""The registry's rows as data: where each workload's code lives, its variants as settings,
AlgoPerf's parameter counts and metric names."""

from __future__ import annotations

import pytest

from algoperf.workloads import registry


def test_every_row_names_its_folder_class_parameter_count_and_target_metric():
    for info in registry.WORKLOADS.values():
        assert info.module == registry.get_workload(info.base).module, info.name
        assert info.class_name.endswith("Workload"), info.name
        assert isinstance(info.param_count, int) and info.param_count > 0, info.name
        assert info.target_metric_name in info.metrics, info.name
        assert info.framework_module("jax") == \
            f"algoperf.workloads.{info.module}.{info.module}_jax.workload"


def test_a_variant_shares_its_bases_code_and_differs_by_its_settings_only():
    for info in registry.WORKLOADS.values():
        base = registry.get_workload(info.base)
        if info.is_variant:
            assert (info.module, info.class_name, info.metrics) == \
                (base.module, base.class_name, base.metrics), info.name
            assert info.settings, f"{info.name} is a variant with no settings"
        else:
            assert not info.settings, info.name


def test_pytorch_count_differs_only_where_algoperfs_models_do():
    differing = {name for name, info in registry.WORKLOADS.items()
                 if info.expected_param_count("pytorch") != info.expected_param_count("jax")}
    assert {registry.get_workload(name).base for name in differing} == \
        {"librispeech_deepspeech"}


def test_rows_are_hashable_and_their_settings_read_only():
    info = registry.get_workload("digits_silu")
    assert hash(info) == hash(registry.get_workload("digits_silu"))
    with pytest.raises(TypeError):
        info.settings["activation"] = "relu"


def test_import_builds_a_variant_from_its_settings():
    workload = registry.import_workload("digits_silu", "pytorch")
    assert (workload.workload_name, workload.activation) == ("digits_silu", "silu")
    assert registry.import_workload("digits", "pytorch").activation == "relu"


def test_a_setting_the_workload_class_does_not_have_fails_at_construction():
    cls = type(registry.import_workload("digits", "jax"))
    with pytest.raises(TypeError, match="no variant setting colour"):
        cls(workload_name="digits", colour="red")


def test_a_row_without_code_is_listed_but_not_importable():
    missing = [name for name, row in registry.WORKLOADS.items() if not row.implemented]
    if not missing:
        pytest.skip("every registry row is implemented")
    assert missing[0] not in registry.implemented()
    with pytest.raises(registry.UnknownNameError, match="no implementation here yet"):
        registry.import_workload(missing[0], "jax")
