"""The scoring arithmetic: time-to-target, best trial, medians, 4x rule, profiles, bootstrap."""

import math
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from algoperf.scoring import diagnostics as dg
from algoperf.scoring.aggregate import median_over_studies
from algoperf.scoring.bootstrap import bootstrap, competition_ranks, resampled_medians
from algoperf.scoring.csvlog import EvalLog
from algoperf.scoring.discover import TrialDir
from algoperf.scoring.performance_profiles import (
    apply_scoring_rules,
    benchmark_score,
    performance_profile,
    performance_ratios,
    score_times,
    scores_from_ratios,
    tau_grid,
)
from algoperf.scoring.speedups import speedup
from algoperf.scoring.trials import best_trial, evaluate_trial
from algoperf.workloads.registry import get_workload

INF, NAN = math.inf, math.nan
DIGITS = get_workload("digits")  # accuracy, maximised
CRITEO = get_workload("criteo1tb")  # loss, minimised
HIT = DIGITS.validation_target_value  # exactly on the target counts as reaching it
MISS = HIT - 0.01


def trial(workload, scores, metric, name="trial_1"):
    info = get_workload(workload)
    column = f"validation/{info.target_metric_name}"
    log = EvalLog({"score": np.array(scores, float), column: np.array(metric, float),
                   "global_step": np.arange(1, len(scores) + 1) * 10.0}, len(scores))
    where = TrialDir("sub", Path("exp"), "study_0", workload, "jax", name, Path("exp") / name)
    return evaluate_trial(where, log, None, info, dg.Diagnostics())


def test_time_to_target_is_the_score_at_the_first_eval_meeting_a_maximised_target():
    result = trial("digits", [10, 20, 30, 40], [MISS, HIT, 1.0, 0.2])
    assert (result.hit_index, result.time_to_target) == (1, 20.0)


def test_time_to_target_uses_less_or_equal_for_minimised_metrics():
    target = CRITEO.validation_target_value
    result = trial("criteo1tb", [5, 6, 7], [0.2, target, 0.1])
    assert (result.hit_index, result.time_to_target) == (1, 6.0)


def test_never_reaching_the_target_gives_infinite_time():
    assert trial("digits", [1, 2], [0.1, HIT - 1e-9]).time_to_target == INF


def test_nan_metrics_never_reach_the_target():
    assert trial("digits", [1, 2, 3], [NAN, NAN, HIT]).hit_index == 2


@given(st.lists(st.floats(allow_infinity=True, allow_nan=True, width=64), max_size=20),
       st.sampled_from(["digits", "criteo1tb", "wmt", "librispeech_conformer"]))
def test_the_target_test_is_the_same_on_arrays_and_on_single_values(values, workload):
    info = get_workload(workload)
    mask = info.reached(np.array(values, dtype=float))
    assert mask.tolist() == [info.reached(v) for v in values]
    first = info.first_reached(values)
    assert first == (mask.tolist().index(True) if any(mask) else None)
    strict = info.reached(np.array(values, dtype=float), strict=True)  # the runner's stop test
    at_target = np.array(values, dtype=float) == info.validation_target_value
    assert (strict <= mask).all() and not (strict & at_target).any()


def test_best_trial_is_the_one_reaching_the_target_in_fewest_evals_not_least_time():
    fewer_evals = trial("digits", [300, 400], [1.0, 1.0], "trial_1")
    less_time = trial("digits", [100, 250, 260], [0.1, 0.1, 1.0], "trial_2")
    assert best_trial([less_time, fewer_evals]) is fewer_evals


def test_best_trial_ties_go_to_the_smaller_time():
    slow = trial("digits", [10, 90], [0.1, 1.0], "trial_1")
    fast = trial("digits", [10, 50], [0.1, 1.0], "trial_2")
    assert best_trial([slow, fast]) is fast


def test_best_trial_is_none_when_no_trial_reaches_the_target():
    assert best_trial([trial("digits", [1], [0.1])]) is None


def test_median_over_studies_lets_infinite_studies_count():
    assert median_over_studies([10.0, INF, 30.0]) == 30.0
    assert median_over_studies([10.0, INF, INF]) == INF
    assert median_over_studies([10.0, 20.0]) == 15.0
    assert median_over_studies([10.0, INF]) == INF
    assert math.isnan(median_over_studies([]))


def test_four_x_rule_voids_times_strictly_above_four_times_the_best():
    times = np.array([[100.0], [400.0], [400.001]])
    ruled = apply_scoring_rules(times, ["w"], ["w"])
    assert ruled[:, 0].tolist() == [100.0, 400.0, INF]


def test_held_out_variant_missed_voids_its_base_workload():
    columns = ["ogbg", "wmt", "ogbg_gelu"]
    times = np.array([[10.0, 20.0, INF], [10.0, 20.0, 5.0], [10.0, 20.0, NAN]])
    ruled = apply_scoring_rules(times, columns, ["ogbg", "wmt"], {"ogbg_gelu": "ogbg"})
    assert ruled.tolist() == [[INF, 20.0], [10.0, 20.0], [INF, 20.0]]


def test_held_out_variant_beyond_four_x_voids_its_base_workload():
    columns = ["ogbg", "ogbg_gelu"]
    times = np.array([[10.0, 1.0], [10.0, 4.5]])
    ruled = apply_scoring_rules(times, columns, ["ogbg"], {"ogbg_gelu": "ogbg"})
    assert ruled[:, 0].tolist() == [10.0, INF]


def test_ratios_divide_by_the_best_and_keep_infinite_and_missing_times():
    times = np.array([[10.0, INF, NAN], [20.0, INF, 7.0]])
    ratios = performance_ratios(times)
    assert ratios[:, 0].tolist() == [1.0, 2.0]
    assert ratios[:, 1].tolist() == [INF, INF]
    assert math.isnan(ratios[0, 2]) and ratios[1, 2] == 1.0


def test_profile_counts_workloads_within_tau_over_the_whole_workload_set():
    ratios = np.array([[1.0, 2.0, INF, NAN]])
    profile = performance_profile(ratios, np.array([1.0, 1.5, 2.0, 4.0]), num_workloads=8)
    assert profile.tolist() == [[1 / 8, 1 / 8, 2 / 8, 2 / 8]]


def test_fastest_everywhere_scores_one_and_missing_everything_scores_zero():
    result = score_times(np.array([[1.0, 2.0], [INF, NAN]]), ["a", "b"], ["a", "b"])
    assert result.scores.tolist() == [1.0, 0.0]


def test_score_is_the_normalised_trapezoid_area_of_the_step_profile():
    taus = tau_grid()
    assert (taus[0], taus[-1], len(taus)) == (1.0, 4.0, 100)
    result = score_times(np.array([[1.0], [2.5]]), ["w"], ["w"])
    rho = [1.0 if t >= 2.5 else 0.0 for t in taus]  # the slower submission's profile
    area = sum((taus[k + 1] - taus[k]) * (rho[k] + rho[k + 1]) / 2 for k in range(99))
    assert result.scores[1] == pytest.approx(area / 3, rel=1e-12)
    assert abs(result.scores[1] - 1.5 / 3) < 3 / 99 / 3


def test_scoring_functions_broadcast_over_a_leading_batch_axis():
    times = np.array([[[1.0, 3.0], [2.0, 1.0]], [[1.0, INF], [9.0, 1.0]]])
    batched = score_times(times, ["a", "b"], ["a", "b"]).scores
    one_by_one = [score_times(t, ["a", "b"], ["a", "b"]).scores for t in times]
    assert np.array_equal(batched, np.stack(one_by_one))
    assert benchmark_score(np.ones((3, 100)), tau_grid()).tolist() == [1.0, 1.0, 1.0]


def test_resampled_medians_only_draw_from_each_cells_own_studies():
    padded = np.array([[[5.0, 7.0, 9.0], [1.0, NAN, NAN], [NAN, NAN, NAN]]])
    medians = resampled_medians(padded, 500, np.random.default_rng(0))
    assert set(np.unique(medians[:, 0, 0])) <= {5.0, 7.0, 9.0}
    assert np.all(medians[:, 0, 1] == 1.0)
    assert np.all(np.isnan(medians[:, 0, 2]))


def test_resampled_median_of_even_counts_averages_the_middle_values():
    padded = np.array([[[2.0, 4.0]]])
    values = set(np.unique(resampled_medians(padded, 200, np.random.default_rng(1))))
    assert values == {2.0, 3.0, 4.0}


def test_competition_ranks_share_the_better_rank_on_ties():
    assert competition_ranks(np.array([0.5, 0.9, 0.5, 0.1])).tolist() == [2, 1, 2, 4]


def test_bootstrap_is_seeded_and_its_rank_distribution_sums_to_one():
    study_times = [[[10.0, 12.0, INF]], [[11.0, INF, 30.0]]]
    first = bootstrap(study_times, ["w"], ["w"], replicates=300, seed=3)
    again = bootstrap(study_times, ["w"], ["w"], replicates=300, seed=3)
    assert np.array_equal(first.scores, again.scores)
    assert np.allclose(first.rank_distribution.sum(axis=1), 1.0)
    assert np.all(first.ci_low <= first.ci_high)


def test_bootstrap_of_a_submission_that_always_wins_is_certain():
    study_times = [[[1.0, 1.0, 1.0]], [[INF, INF, INF]]]
    result = bootstrap(study_times, ["w"], ["w"], replicates=100, seed=0)
    assert result.rank_distribution.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert (result.ci_low.tolist(), result.ci_high.tolist()) == ([1.0, 0.0], [1.0, 0.0])


def test_speedup_is_the_geometric_mean_with_misses_at_budget_plus_one_second():
    result = speedup({"a": 50.0, "b": INF}, {"a": 100.0, "b": 99.0}, {"a": 1000.0, "b": 99.0},
                     "ref")
    assert result.per_workload == {"a": 2.0, "b": 99.0 / 100.0}
    assert result.geometric_mean == pytest.approx(math.sqrt(2.0 * 0.99))


def test_scores_from_ratios_equal_the_trapezoid_of_the_profile():
    rng = np.random.default_rng(0)
    ratios = rng.uniform(0.9, 5.0, size=(50, 4, 8))
    ratios[rng.random(ratios.shape) < 0.2] = INF
    ratios[rng.random(ratios.shape) < 0.1] = NAN
    taus = tau_grid()
    expected = benchmark_score(performance_profile(ratios, taus, 8), taus)
    assert np.allclose(scores_from_ratios(ratios, taus, 8), expected, rtol=0, atol=1e-12)
    permuted = scores_from_ratios(ratios[..., ::-1], taus, 8)
    assert np.array_equal(permuted, scores_from_ratios(ratios, taus, 8))
