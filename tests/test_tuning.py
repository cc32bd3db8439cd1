"""Search spaces, Halton points, trial assignment, seeds and hparams.json (algoperf.tuning)."""

import json
import logging
import math
import subprocess
import sys

import numpy as np
import pytest

from algoperf.errors import UserError
from algoperf.tuning import (
    assign_trials,
    derive_seed,
    halton_primes,
    halton_sequence,
    hparams_from_json,
    hparams_to_json,
    load_search_space,
    make_hyperparameters,
    parse_search_space,
    scrambled_van_der_corput,
)

# AlgoPerf's archived AdamW space (reference §7.3, example 1).
ADAMW_SPACE = {
    "learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 2e-2, "max": 0.5, "scaling": "log"},
    "beta2": {"feasible_points": [0.999]},
    "warmup_factor": {"feasible_points": [0.05]},
    "weight_decay": {"min": 5e-3, "max": 1.0, "scaling": "log"},
    "label_smoothing": {"feasible_points": [0.1, 0.2]},
    "dropout_rate": {"feasible_points": [0.0, 0.1]},
}

# The first two entries of AlgoPerf's baseline list-form space (reference §7.3, example 2).
BASELINE_LIST = [
    {"dropout_rate": 0.0, "label_smoothing": 0.1, "learning_rate": 0.001308209823469072,
     "one_minus_beta1": 0.02686663061, "beta2": 0.9981232922116359,
     "weight_decay": 0.16375311233774334, "warmup_factor": 0.1},
    {"dropout_rate": 0.0, "label_smoothing": 0.2, "learning_rate": 0.0008445074561975979,
     "one_minus_beta1": 0.11042418465, "beta2": 0.9978504782314613,
     "weight_decay": 0.08135402759553023, "warmup_factor": 0.05},
]  # fmt: skip

# A real hparams.json written by AlgoPerf (v0.6 leaderboard, shampoo, study_0/wmt_pytorch/trial_1).
REAL_HPARAMS_JSON = """{
  "learning_rate": 0.0017486387539278373,
  "one_minus_beta1": 0.06733926164,
  "one_minus_beta2": 0.00448403102,
  "epsilon": 1e-08,
  "one_minus_momentum": 0.0,
  "use_momentum": false,
  "weight_decay": 0.08121616522670176,
  "max_preconditioner_dim": 1024,
  "precondition_frequency": 100,
  "start_preconditioning_step": -1,
  "inv_root_override": 0,
  "exponent_multiplier": 1.0,
  "grafting_type": "ADAM",
  "grafting_epsilon": 1e-08,
  "use_normalized_grafting": false,
  "communication_dtype": "FP32",
  "communicate_params": true,
  "use_cosine_decay": true,
  "warmup_factor": 0.02,
  "label_smoothing": 0.0,
  "dropout_rate": 0.1,
  "use_nadam": true,
  "step_hint_factor": 1.0
}"""


def _write(tmp_path, obj, name="space.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# --- Halton construction --------------------------------------------------------------------------


def test_halton_primes_are_largest_odd_primes_below_1000_except_997():
    assert halton_primes(7) == [947, 953, 967, 971, 977, 983, 991]
    assert halton_primes(1) == [991]
    assert halton_primes(166)[0] == 3  # all 167 odd primes below 1000 but 997


def test_halton_primes_enlarge_the_bound_by_1000_when_short():
    primes = halton_primes(167)  # 167 odd primes below 1000 is not "more than 167"
    assert len(primes) == 167 and primes[-1] == 1997  # below 2000, 1999 dropped
    assert all(all(p % q for q in range(2, math.isqrt(p) + 1)) for p in primes)


def test_halton_sequence_pins_algoperf_values():
    # Computed once and checked bit for bit against a scalar transcription of AlgoPerf's
    # halton.generate_sequence (points 101 and 102, bases 983 and 991, unshuffled).
    assert halton_sequence(2, 2).tolist() == [
        [0.2739744372653363, 0.28612427728381884],
        [0.9911667058309517, 0.8300193327833143],
    ]


def test_halton_sequence_grows_by_appending_points():
    assert np.array_equal(halton_sequence(40, 3)[:10], halton_sequence(10, 3))


def test_van_der_corput_stratifies_one_point_per_base_interval():
    # Any `base` consecutive points differ in their last digit, so (before the common shift)
    # each interval [k/base, (k+1)/base) holds one point: no circular gap reaches 2/base.
    base = 991
    x = np.sort(scrambled_van_der_corput(base, base))
    gaps = np.diff(np.concatenate([x, [x[0] + 1.0]]))
    assert gaps.max() < 2 / base
    assert ((0 <= x) & (x < 1)).all()


# --- points of a dict-form space ------------------------------------------------------------------


def test_points_are_reproducible_in_a_fresh_process(tmp_path):
    path = _write(tmp_path, ADAMW_SPACE)
    here = [list(p) for p in load_search_space(path).points(15, seed=3)]
    code = (
        "import json, sys; from algoperf.tuning import load_search_space; "
        "print(json.dumps([list(p) for p in load_search_space(sys.argv[1]).points(15, seed=3)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == here


def test_seed_changes_order_but_not_the_set_of_points():
    space = parse_search_space(ADAMW_SPACE)
    a, b = space.points(15, seed=0), space.points(15, seed=1)
    assert a != b
    assert sorted(a) == sorted(b)
    assert len(set(a)) == 15


def test_points_are_namedtuples_in_json_order():
    point = parse_search_space(ADAMW_SPACE).points(1, seed=0)[0]
    assert type(point).__name__ == "Hyperparameters"
    assert point._fields == tuple(ADAMW_SPACE)


def test_points_lie_in_bounds_and_on_feasible_points():
    for p in parse_search_space(ADAMW_SPACE).points(200, seed=5):
        assert 1e-4 <= p.learning_rate <= 1e-2
        assert 2e-2 <= p.one_minus_beta1 <= 0.5
        assert 5e-3 <= p.weight_decay <= 1.0
        assert p.beta2 == 0.999 and p.warmup_factor == 0.05
        assert p.label_smoothing in (0.1, 0.2) and p.dropout_rate in (0.0, 0.1)


def test_log_and_linear_scaling_map_the_halton_coordinates():
    space = parse_search_space(
        {"lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"},
         "mom": {"min": 0.5, "max": 0.9, "scaling": "linear"}}
    )  # fmt: skip
    points = space.points(50, seed=0)
    u = np.array([[math.log(p.lr / 1e-4) / math.log(1e3), (p.mom - 0.5) / 0.4] for p in points])
    expected = halton_sequence(50, 2)
    order = np.argsort(u[:, 0])
    np.testing.assert_allclose(u[order], expected[np.argsort(expected[:, 0])], atol=1e-12)


def test_feasible_points_take_equal_shares():
    space = parse_search_space({"choice": {"feasible_points": ["a", "b", "c", "d"]}})
    values = [p.choice for p in space.points(400, seed=0)]
    # Quasirandom: within a few of 100 each (independent draws would scatter by about 9).
    assert all(abs(values.count(v) - 100) <= 5 for v in "abcd")


def test_min_equal_max_gives_a_constant():
    space = parse_search_space({"lr": {"min": 0.1, "max": 0.1, "scaling": "log"}})
    assert {p.lr for p in space.points(5, seed=0)} == {0.1}


# --- list-form spaces -----------------------------------------------------------------------------


def test_list_form_uses_first_entries_in_file_order(tmp_path):
    entries = [{"lr": 0.1 * (i + 1), "wd": i} for i in range(5)]
    space = load_search_space(_write(tmp_path, entries))
    assert space.is_list
    assert [p._asdict() for p in space.points(3, seed=9)] == entries[:3]
    assert space.points(3, seed=0) == space.points(3, seed=1)


def test_list_form_keeps_first_entrys_field_order_for_reordered_entries():
    space = parse_search_space([{"a": 1, "b": 2}, {"b": 4, "a": 3}])
    assert [tuple(p) for p in space.points(2, seed=0)] == [(1, 2), (3, 4)]
    assert space.points(2, seed=0)[1]._fields == ("a", "b")


def test_list_form_warns_when_counts_differ(caplog):
    space = parse_search_space(BASELINE_LIST)
    with caplog.at_level(logging.WARNING, logger="algoperf.tuning"):
        points = space.points(5, seed=0)
    assert len(points) == 2
    assert "5 trial(s) requested but the list holds 2" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="algoperf.tuning"):
        space.points(2, seed=0)
    assert caplog.text == ""


# --- tuning protocol ------------------------------------------------------------------------------


def test_assign_trials_gives_studies_disjoint_chunks_of_one_draw():
    space = parse_search_space(ADAMW_SPACE)
    studies = assign_trials(space, num_studies=3, num_trials=5, seed=11, block=(3, 5))
    assert [len(s) for s in studies] == [5, 5, 5]
    flat = [p for s in studies for p in s]
    assert len(set(flat)) == 15
    assert flat == space.points(15, seed=11)  # the rules' grid: AlgoPerf's 15 points, seeded
    assert studies != assign_trials(space, 3, 5, seed=12, block=(3, 5))


def test_a_trials_point_does_not_depend_on_how_many_trials_or_studies_are_drawn():
    space = parse_search_space(ADAMW_SPACE)
    full = assign_trials(space, num_studies=4, num_trials=12, seed=11, block=(3, 5))
    for num_studies, num_trials in ((1, 1), (1, 2), (3, 2), (2, 5), (4, 7), (3, 12)):
        drawn = assign_trials(space, num_studies, num_trials, seed=11, block=(3, 5))
        assert drawn == [s[:num_trials] for s in full[:num_studies]]
    flat = [p for s in full for p in s]
    assert len(set(flat)) == 48  # past the first block too, no two trials share a point
    # The points all come from AlgoPerf's Halton sequence, block by block.
    assert set(flat) <= set(space.points(15 * 15, seed=0))


def test_assign_trials_list_form_repeats_the_first_entries_per_study():
    space = parse_search_space(BASELINE_LIST)
    studies = assign_trials(space, num_studies=3, num_trials=1, seed=0, block=(3, 5))
    assert [[p._asdict() for p in s] for s in studies] == [[BASELINE_LIST[0]]] * 3


# --- seeds ----------------------------------------------------------------------------------------


def test_derive_seed_pins_known_values():
    assert derive_seed(0, "study", 0, "workload", "digits", "trial", 1) == 2073347821
    assert derive_seed(42) == 2036679759
    assert derive_seed(42, "study", 2) == 1646143159


def test_derive_seed_is_stable_across_processes():
    code = "from algoperf.tuning import derive_seed; print(derive_seed(7, 'workload', 'wmt'))"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": str(salt)},
        ).stdout.strip()
        for salt in (1, 2)
    }  # fmt: skip
    assert runs == {str(derive_seed(7, "workload", "wmt"))}


def test_derive_seed_differs_across_paths_and_part_types():
    seeds = {
        derive_seed(m, "study", s, "workload", w, "trial", t)
        for m in (0, 1)
        for s in range(3)
        for w in ("digits", "mnist", "wmt")
        for t in range(5)
    }
    assert len(seeds) == 2 * 3 * 3 * 5
    assert derive_seed(0, 1) != derive_seed(0, "1")
    assert derive_seed(0, "ab", "c") != derive_seed(0, "a", "bc")
    assert all(0 <= s < 2**31 - 1 for s in seeds)


def test_derive_seed_rejects_non_integer_parts():
    with pytest.raises(TypeError):
        derive_seed(True)
    with pytest.raises(TypeError):
        derive_seed(0, 1.5)
    with pytest.raises(TypeError):
        derive_seed("0")


# --- hparams.json ---------------------------------------------------------------------------------


def test_hparams_json_round_trips_exactly():
    for point in parse_search_space(ADAMW_SPACE).points(15, seed=0):
        again = hparams_from_json(hparams_to_json(point))
        assert again == point and again._fields == point._fields
        assert hparams_to_json(point) == json.dumps(point._asdict(), indent=2)


def test_real_algoperf_hparams_json_round_trips_byte_for_byte():
    hp = hparams_from_json(REAL_HPARAMS_JSON)
    assert hp.epsilon == 1e-08 and hp.use_momentum is False and hp.grafting_type == "ADAM"
    assert hparams_to_json(hp) == REAL_HPARAMS_JSON


def test_make_hyperparameters_reuses_one_class_per_field_order():
    a = make_hyperparameters({"x": 1, "y": 2})
    assert type(a) is type(make_hyperparameters({"x": 3, "y": 4}))
    assert make_hyperparameters({"y": 2, "x": 1})._fields == ("y", "x")


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{", "not valid JSON at line 1"), ("[1, 2]", "non-empty JSON object"),
     ("{}", "non-empty JSON object"), ('{"bad-name": 1}', "not a valid Python identifier")],
)  # fmt: skip
def test_bad_hparams_json_is_a_user_error(text, problem):
    with pytest.raises(UserError, match=problem) as e:
        hparams_from_json(text, source="trial_1/hparams.json")
    assert str(e.value).startswith("trial_1/hparams.json: ")


# --- bad search spaces ----------------------------------------------------------------------------

BAD_SPACES = [
    # (file content, words the message must contain)
    ("", ["file is empty"]),
    ("  \n", ["file is empty"]),
    ('{"lr": {"min": 1,\n  "max": }}', ["not valid JSON", "line 2 column 10"]),
    ("42", ["top level is a number"]),
    ('"lr"', ["top level is a string"]),
    ("{}", ["search space is empty"]),
    ("[]", ["list of configurations is empty"]),
    ('{"lr": 0.1}', ["'lr'", "is a number", "feasible_points"]),
    ('{"lr": {}}', ["'lr'", "missing", "'max'", "'min'", "'scaling'"]),
    ('{"lr": {"min": 1, "max": 2, "scale": "log"}}', ["'lr'", "unknown key", "'scale'"]),
    ('{"lr": {"min": 1, "max": 2}}', ["'lr'", "missing 'scaling'"]),
    ('{"lr": {"min": 1, "max": 2, "scaling": "exp"}}', ["'lr'", '"exp"', '"log" or "linear"']),
    ('{"lr": {"min": 2, "max": 1, "scaling": "linear"}}', ["'lr'", "min (2) > max (1)"]),
    ('{"lr": {"min": 0, "max": 1, "scaling": "log"}}', ["'lr'", "log scaling needs min > 0"]),
    ('{"lr": {"min": -1, "max": 1, "scaling": "log"}}', ["'lr'", "min=-1"]),
    ('{"lr": {"min": "1e-3", "max": 1, "scaling": "log"}}', ["'lr'", "min is a string"]),
    ('{"lr": {"min": 1e-3, "max": null, "scaling": "log"}}', ["'lr'", "max is null"]),
    ('{"lr": {"min": true, "max": 2, "scaling": "linear"}}', ["'lr'", "min is a boolean"]),
    ('{"lr": {"min": 0, "max": Infinity, "scaling": "linear"}}', ["'lr'", "must be finite"]),
    ('{"lr": {"min": NaN, "max": 1, "scaling": "linear"}}', ["'lr'", "must be finite"]),
    ('{"d": {"feasible_points": []}}', ["'d'", "feasible_points is empty"]),
    ('{"d": {"feasible_points": 0.1}}', ["'d'", "feasible_points is a number", "list"]),
    ('{"d": {"feasible_points": [1], "min": 0}}', ["'d'", "mixes feasible_points", "'min'"]),
    ('{"one-minus-beta1": {"feasible_points": [1]}}', ['"one-minus-beta1"', "identifier"]),
    ('{"_lr": {"feasible_points": [1]}}', ['"_lr"', "identifier"]),
    ('{"lambda": {"feasible_points": [1]}}', ['"lambda"', "identifier"]),
    ('{"lr": {"feasible_points": [1]}, "lr": {"feasible_points": [2]}}', ['"lr"', "twice"]),
    ('[{"lr": 1, "wd": 2}, {"lr": 1}]', ["configuration 1", "lacks 'wd'"]),
    ('[{"lr": 1}, {"lr": 1, "wd": 2}]', ["configuration 1", "extra 'wd'"]),
    ('[{"lr": 1}, 5]', ["configuration 1", "is a number"]),
    ("[{}]", ["configuration 0", "non-empty"]),
]


@pytest.mark.parametrize(("content", "words"), BAD_SPACES)
def test_bad_search_space_is_a_one_line_user_error_naming_the_problem(tmp_path, content, words):
    path = _write(tmp_path, content)
    with pytest.raises(UserError) as e:
        load_search_space(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    for word in words:
        assert word in message


def test_missing_search_space_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="search space file not found"):
        load_search_space(tmp_path / "nope.json")


def test_directory_as_search_space_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        load_search_space(tmp_path)


def test_non_utf8_search_space_is_a_user_error(tmp_path):
    path = tmp_path / "space.json"
    path.write_bytes(b'{"lr": {"feasible_points": ["\xff"]}}')
    with pytest.raises(UserError, match="not UTF-8"):
        load_search_space(path)


def test_algoperf_example_spaces_load(tmp_path):
    assert load_search_space(_write(tmp_path, ADAMW_SPACE, "a.json")).names == tuple(ADAMW_SPACE)
    assert load_search_space(_write(tmp_path, BASELINE_LIST, "b.json")).names == tuple(
        BASELINE_LIST[0]
    )
