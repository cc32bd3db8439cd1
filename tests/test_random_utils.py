"""The numpy PRNG is bit-identical to jax.random; step_rngs matches the per-step scalar path."""

import subprocess
import sys

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algoperf import random_utils
from algoperf.errors import UserError

SEEDS = [0, 1, 2, 7, 42, 1234, 2**16 + 3, 123456789, 2**31 - 1, 2**31, 2**32 - 1]
FOLD_DATA = [0, 1, 2, 3, 100, 99_999, 2**31 - 1, 2**31, 2**32 - 1]
SPLIT_COUNTS = [0, 1, 2, 3, 4, 5, 16, 101]

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@pytest.fixture(autouse=True)
def _numpy_backend():
    """Every test starts on the numpy backend and leaves the module as it found it."""
    previous = random_utils.get_framework()
    random_utils.set_framework("pytorch")
    yield
    random_utils.set_framework(previous)


def _same(ours, theirs) -> bool:
    ours = np.asarray(ours)
    return ours.dtype == np.uint32 and np.array_equal(ours, np.asarray(theirs))


@pytest.mark.parametrize("seed", SEEDS)
def test_prngkey_matches_jax(seed):
    assert random_utils.PRNGKey(seed).shape == (2,)
    assert _same(random_utils.PRNGKey(seed), jax.random.PRNGKey(seed))


@pytest.mark.parametrize("seed", SEEDS)
def test_split_matches_jax_for_every_count(seed):
    key = random_utils.PRNGKey(seed)
    for num in SPLIT_COUNTS:
        keys = random_utils.split(key, num)
        assert keys.shape == (num, 2)
        assert _same(keys, jax.random.split(jax.random.PRNGKey(seed), num))


def test_split_defaults_to_two_keys():
    key = random_utils.PRNGKey(3)
    assert _same(random_utils.split(key), jax.random.split(jax.random.PRNGKey(3)))


@pytest.mark.parametrize("seed", SEEDS)
def test_fold_in_matches_jax(seed):
    key = random_utils.PRNGKey(seed)
    for data in FOLD_DATA:
        assert _same(random_utils.fold_in(key, data),
                     jax.random.fold_in(jax.random.PRNGKey(seed), data))


@settings(max_examples=60, deadline=None)
@given(seed=seeds, data=st.integers(0, 2**32 - 1), num=st.integers(1, 9))
def test_runner_key_chain_matches_jax(seed, data, num):
    """The runner's chain: PRNGKey, split off the first key, split 4, fold in the step, split."""

    def chain(prng_key, split, fold_in):
        rng = split(prng_key(seed), 2)[0]
        _, _, _, rng = split(rng, 4)
        return split(fold_in(rng, data), num)

    ours = chain(random_utils.PRNGKey, random_utils.split, random_utils.fold_in)
    assert _same(ours, chain(jax.random.PRNGKey, jax.random.split, jax.random.fold_in))


def test_keys_from_jax_and_lists_are_accepted():
    jax_key = jax.random.PRNGKey(9)
    assert _same(random_utils.split(jax_key, 3), jax.random.split(jax_key, 3))
    assert _same(random_utils.fold_in([0, 9], 5), jax.random.fold_in(jax_key, 5))


@pytest.mark.parametrize("first_step", [0, 1, 999, 123_456, 2**32 - 50])
def test_step_rngs_equal_split_of_fold_in_per_step(first_step):
    rng = random_utils.split(random_utils.PRNGKey(31), 4)[3]
    block = random_utils.step_rngs(rng, first_step, 50)
    assert block.shape == (50, 4, 2) and block.dtype == np.uint32
    for i in range(50):
        expected = random_utils.split(random_utils.fold_in(rng, first_step + i), 4)
        assert np.array_equal(block[i], expected)


def test_step_rngs_match_jax():
    rng = jax.random.PRNGKey(77)
    block = random_utils.step_rngs(rng, 10, 3, num=5)
    for i in range(3):
        assert _same(block[i], jax.random.split(jax.random.fold_in(rng, 10 + i), 5))


def test_step_rngs_of_no_steps_is_empty():
    assert random_utils.step_rngs(random_utils.PRNGKey(0), 5, 0).shape == (0, 4, 2)


def test_step_rngs_rejects_steps_past_uint32():
    with pytest.raises(ValueError, match="2\\*\\*32"):
        random_utils.step_rngs(random_utils.PRNGKey(0), 2**32 - 2, 5)


def test_jax_backend_returns_jax_keys_with_the_same_bits():
    numpy_keys = random_utils.split(random_utils.fold_in(random_utils.PRNGKey(5), 3), 4)
    random_utils.set_framework("jax")
    jax_keys = random_utils.split(random_utils.fold_in(random_utils.PRNGKey(5), 3), 4)
    assert isinstance(jax_keys, jax.Array)
    assert _same(numpy_keys, jax_keys)


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
@pytest.mark.parametrize("seed", [-1, 2**32, 2**63])
def test_out_of_range_seed_is_a_user_error(framework, seed):
    random_utils.set_framework(framework)
    with pytest.raises(UserError, match="rng seed must be in"):
        random_utils.PRNGKey(seed)


def test_non_integer_seed_is_a_user_error():
    with pytest.raises(UserError, match="must be an integer"):
        random_utils.PRNGKey(1.5)


def test_negative_fold_in_data_is_a_user_error():
    with pytest.raises(UserError, match="fold_in data"):
        random_utils.fold_in(random_utils.PRNGKey(0), -1)


@pytest.mark.parametrize("bad_key", [np.zeros(3, np.uint32), np.zeros(2, np.float32), [-1, 0]])
def test_malformed_key_is_rejected(bad_key):
    with pytest.raises(TypeError, match="uint32 array of shape \\(2,\\)"):
        random_utils.split(bad_key)


def test_unknown_framework_is_a_user_error():
    with pytest.raises(UserError, match="framework must be one of"):
        random_utils.set_framework("tensorflow")
    assert random_utils.get_framework() == "pytorch"


def test_numpy_backend_imports_no_framework():
    code = (
        "import sys\n"
        "from algoperf import random_utils as r\n"
        "r.step_rngs(r.split(r.fold_in(r.PRNGKey(1), 2))[0], 0, 10)\n"
        "assert not {'jax', 'torch'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
