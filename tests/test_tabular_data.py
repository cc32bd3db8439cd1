"""tabular's generated data: Guyon's procedure as scikit-learn implements it, pinned.

The splits are a direct ``make_classification`` call with the documented arguments, cut and
standardised as documented; classes are balanced; and data that does not match the pinned
digest (another generator seed here, as another scikit-learn release would give) is refused
in one line rather than trained on.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification

from algoperf.errors import UserError
from algoperf.workloads.tabular import input_pipeline


def test_splits_are_the_generators_output_cut_in_order_and_standardised_on_train():
    features, labels = make_classification(**input_pipeline.GENERATOR_ARGS)
    splits = input_pipeline.generate()
    start = 0
    train_rows = features[: input_pipeline.SPLIT_SIZES["train"]]
    mean, std = train_rows.mean(0), train_rows.std(0)
    for split, size in input_pipeline.SPLIT_SIZES.items():
        rows = slice(start, start + size)
        np.testing.assert_array_equal(splits[split]["targets"], labels[rows])
        np.testing.assert_allclose(splits[split]["inputs"], (features[rows] - mean) / std,
                                   rtol=1e-5, atol=1e-5)
        assert splits[split]["inputs"].dtype == np.float32
        assert splits[split]["inputs"].shape == (size, input_pipeline.NUM_FEATURES)
        start += size
    train = splits["train"]["inputs"]
    np.testing.assert_allclose(train.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(train.std(0), 1.0, atol=1e-4)


def test_every_split_holds_every_class_in_near_equal_numbers():
    for split, arrays in input_pipeline.generate().items():
        counts = np.bincount(arrays["targets"], minlength=input_pipeline.NUM_CLASSES)
        size = input_pipeline.SPLIT_SIZES[split]
        assert len(counts) == input_pipeline.NUM_CLASSES
        assert counts.min() > 0.9 * size / input_pipeline.NUM_CLASSES


def test_other_generated_data_is_refused_in_one_line_naming_the_remedy(monkeypatch):
    monkeypatch.setitem(input_pipeline.GENERATOR_ARGS, "random_state", 1)
    input_pipeline.generate.cache_clear()
    try:
        with pytest.raises(UserError) as error:
            input_pipeline.generate()
    finally:
        input_pipeline.generate.cache_clear()
    message = str(error.value)
    assert "\n" not in message
    assert "generates other data for the tabular workload" in message
    assert "install the version the lockfile pins" in message


def test_an_unknown_split_is_a_value_error():
    with pytest.raises(ValueError, match="no split 'eval'"):
        input_pipeline.load_split("eval")
