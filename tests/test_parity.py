"""JAX-vs-PyTorch parity of every implemented registry row, variants included, asserted by the
harness ``algoperf.workloads.common.parity`` (see docs/workloads.md, "JAX-vs-PyTorch parity").

No test here names a workload: the cases are ``registry.implemented()``, each row's transfer
definition is its folder's ``parity.py`` (a row without one fails), and its data is the
synthetic prepared dataset its ``algoperf.datasets.<dataset>.write_synthetic`` writes (none
for a bundled dataset). The last tests show the harness fails on a real difference.

Cost: one JAX initialisation per row (shared by its two tests), batches of 8, 5 SGD steps.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib

import numpy as np
import pytest
import torch

from algoperf import random_utils
from algoperf.workloads import registry
from algoperf.workloads.common import parity

NAMES = registry.implemented()
SEED = 0
BATCH_SIZE = 8
STEPS = 5
LEARNING_RATE = 0.05
PROBE = "digits"  # the cheapest row, for the tests of the harness itself


@pytest.fixture(autouse=True)
def _numpy_rngs():
    """Keys come from the numpy threefry backend, as in a PyTorch run (same values as JAX's)."""
    previous = random_utils.get_framework()
    random_utils.set_framework("pytorch")
    yield
    random_utils.set_framework(previous)


@pytest.fixture(scope="session")
def data_dirs(tmp_path_factory):
    """``dataset -> data dir`` with its synthetic prepared data, written on first use."""
    root = tmp_path_factory.mktemp("parity-data")
    written: dict[str, str | None] = {}

    def data_dir(name: str) -> str | None:
        dataset = registry.get_workload(name).dataset
        if dataset not in written:
            module_name = f"algoperf.datasets.{dataset}"
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name != module_name:
                    raise
                module = None  # bundled with the workload (digits): no data dir
            if module is None:
                written[dataset] = None
            else:
                module.write_synthetic(root)
                written[dataset] = str(root)
        return written[dataset]

    return data_dir


@functools.cache
def jax_init(name: str):
    """The row's JAX workload, parameters and model state, initialised once per session, with
    the workload's reduced inputs where it has them (``common.registered``)."""
    return parity.init_jax(name, SEED, reduced=True)


def build(name: str, data_dirs, num_batches: int):
    pair = parity.Pair.build(name, SEED, jax_init=jax_init(name), reduced=True)
    return pair, pair.batches(data_dirs(name), BATCH_SIZE, num_batches)


@pytest.mark.parametrize("name", NAMES)
def test_output_parity_in_eval_and_train_mode(name, data_dirs):
    pair, batches = build(name, data_dirs, 1)
    result = parity.output_parity(pair, batches[0])
    print(result)
    for mode in ("eval", "train"):
        for quantity in ("logits", "loss", "per_example"):
            assert f"{mode}/{quantity}" in result.differences
    assert "loss_fn" in result.differences
    assert result.ok


@pytest.mark.parametrize("name", NAMES)
def test_training_parity_of_plain_sgd(name, data_dirs):
    pair, batches = build(name, data_dirs, STEPS)
    unresolved = parity.unresolved_training_difference(name)
    if unresolved:  # must still fail: a fix turns this into a failure, to be recorded
        with pytest.raises(parity.ParityError):
            parity.training_parity(pair, batches, parity.learning_rate(name, LEARNING_RATE))
        pytest.xfail(unresolved)
    result = parity.training_parity(pair, batches, parity.learning_rate(name, LEARNING_RATE))
    print(result, result.curves, result.movement, sep="\n")
    assert len(result.curves["jax"]) == len(result.curves["pytorch"]) == STEPS
    assert {"train_loss", "params"} <= set(result.differences)
    assert result.ok


# The harness itself.


def test_every_implemented_row_has_a_transfer_definition_and_a_missing_one_fails(monkeypatch):
    for name in NAMES:
        assert callable(parity.load_definition(name).jax_to_pytorch)
    row = registry.get_workload(PROBE)
    monkeypatch.setitem(registry.WORKLOADS, PROBE,
                        dataclasses.replace(row, module="no_such_workload"))
    with pytest.raises(parity.ParityDefinitionError, match="workloads/no_such_workload/parity.py"):
        parity.Pair.build(PROBE, SEED)


def test_a_perturbed_weight_fails_output_parity_naming_the_logits(data_dirs):
    pair, batches = build(PROBE, data_dirs, 1)
    parity.output_parity(pair, batches[0])  # passes before
    name, bias = list(pair.model.named_parameters())[-1]  # the output layer's bias
    assert name.endswith("bias")
    with torch.no_grad():
        bias[3] += 1e-4  # ten times the logits' atol
    with pytest.raises(parity.ParityError) as error:
        parity.output_parity(pair, batches[0])
    message = str(error.value)
    assert "worst eval/logits at logits[" in message and ", 3]" in message.splitlines()[0]


def test_a_perturbed_weight_fails_training_parity_naming_the_tensor(data_dirs):
    pair, batches = build(PROBE, data_dirs, STEPS)
    name, weight = list(pair.model.named_parameters())[2]  # a hidden layer's weight
    with torch.no_grad():
        weight[0, 0] += 1e-3
    with pytest.raises(parity.ParityError) as error:
        parity.training_parity(pair, batches, LEARNING_RATE)
    assert f"worst params at {name}[0, 0]" in str(error.value)


def test_a_transfer_missing_or_adding_a_key_or_misshaping_one_fails_to_load():
    pair = parity.Pair.build(PROBE, SEED, jax_init=jax_init(PROBE))
    state_dict = pair.transferred()
    first = next(iter(state_dict))
    missing = {key: value for key, value in state_dict.items() if key != first}
    with pytest.raises(parity.ParityError, match=f"not covered.*{first}"):
        parity.load_state_dict(PROBE, pair.model, missing)
    with pytest.raises(parity.ParityError, match="does not have: net.extra.weight"):
        parity.load_state_dict(PROBE, pair.model, {**state_dict, "net.extra.weight": np.ones(3)})
    with pytest.raises(parity.ParityError, match=f"shape mismatches: {first}"):
        parity.load_state_dict(PROBE, pair.model, {**state_dict, first: state_dict[first].T})


def test_converters_map_flax_layouts_to_pytorchs():
    kernel = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # HWIO
    weight = parity.conv({"kernel": kernel})["weight"]
    assert weight.shape == (5, 4, 2, 3) and weight[4, 3, 1, 2] == kernel[1, 2, 3, 4]
    dense = parity.dense({"kernel": np.ones((3, 2)), "bias": np.zeros(2)})
    assert dense["weight"].shape == (2, 3) and dense["bias"].shape == (2,)
    norm = parity.batch_norm({"scale": np.ones(2), "bias": np.zeros(2)},
                             {"mean": np.full(2, 0.5), "var": np.full(2, 2.0)})
    assert sorted(norm) == ["bias", "num_batches_tracked", "running_mean", "running_var",
                            "weight"]
    assert parity.prefixed("fc", dense).keys() == {"fc.weight", "fc.bias"}


def test_compare_reports_the_worst_element_and_never_lets_nan_agree():
    tolerance = parity.Tolerance(rtol=1e-5, atol=1e-6)
    close = parity.compare("q", [("a", np.ones(3), np.ones(3) + 1e-7)], tolerance)
    assert close.ok and close.max_abs == pytest.approx(1e-7)
    far = parity.compare("q", [("a", np.ones(3), np.ones(3)),
                               ("b", np.array([1.0, 2.0]), np.array([1.0, 2.1]))], tolerance)
    assert not far.ok and far.worst == "b" and far.detail.startswith("[1]")
    for jax_value, torch_value in ((np.nan, 1.0), (np.nan, np.nan), (np.inf, 1.0)):
        assert not parity.compare("q", [("a", np.array([jax_value]), np.array([torch_value]))],
                                  tolerance).ok
    assert parity.compare("q", [("a", np.array([-np.inf]), np.array([-np.inf]))], tolerance).ok
