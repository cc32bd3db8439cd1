"""Scoring reproduces AlgoPerf's published v0.6 results from the real leaderboard logs."""

import json
import math

import pytest
from click.testing import CliRunner
from conftest import ALGOPERF_LOGS

from algoperf.cli import cli
from algoperf.scoring import score

V06 = ALGOPERF_LOGS / "v0.6"

pytestmark = pytest.mark.skipif(not V06.is_dir(), reason=f"AlgoPerf v0.6 logs not at {V06}")

# Published v0.6 external-tuning scores (algoperf-logs/README.md).
PUBLISHED = {"shampoo": 0.6244, "baseline": 0.4590}

# Median times AlgoPerf's own scoring code (mlcommons/submissions_algorithms scoring/,
# score_submissions.py on these logs) writes to time_to_targets.csv.
ALGOPERF_TIMES = {
    "baseline": {"criteo1tb": 7491.487124443054, "fastmri": 873.2600636482239,
                 "ogbg": 4575.802174806595, "wmt": 35319.428525447845},
    "shampoo": {"criteo1tb": 7692.307582139969, "fastmri": 640.7693979740143,
                "imagenet_vit": 41094.59843540192, "ogbg": 2868.327675104141,
                "wmt": 33604.82180261612},
}


@pytest.fixture(scope="module")
def external():
    return score([V06 / "external_tuning"], rules="v0.6", ruleset="external",
                 bootstrap_replicates=200)


def test_published_v06_external_scores_are_reproduced_to_4_decimals(external):
    scores = {s.name: s.score for s in external.submissions}
    assert set(scores) == set(PUBLISHED)
    for name, published in PUBLISHED.items():
        assert round(scores[name], 4) == published, name


def test_per_workload_times_match_algoperfs_scoring_code(external):
    for name, times in ALGOPERF_TIMES.items():
        sub = external.submission(name)
        for workload in external.workloads:
            expected = times.get(workload, math.inf)
            assert sub.time(workload) == pytest.approx(expected, rel=1e-12), (name, workload)


def test_ranks_follow_scores(external):
    assert [(s.name, s.rank) for s in external.submissions] == [("shampoo", 1), ("baseline", 2)]


def test_self_tuning_submission_scored_alone_reaches_six_of_eight_workloads():
    report = score([V06 / "self_tuning" / "schedule_free_adamw_v2"], ruleset="self",
                   bootstrap_replicates=0)
    (sub,) = report.submissions
    assert sub.workloads_reached == 6
    assert sub.score == pytest.approx(0.75, abs=1e-12)
    assert not [w for w in report.warnings if w.kind in ("incomplete", "rules_mismatch")]


def test_scoring_self_tuning_logs_as_external_warns_about_the_ruleset():
    report = score([V06 / "self_tuning"], ruleset="external", bootstrap_replicates=0)
    assert any(w.kind == "rules_mismatch" for w in report.warnings)


def test_speedup_matches_algoperfs_compute_speedups_under_v05_budgets():
    # AlgoPerf's compute_speedups.py prints 0.8358343191311296 (shampoo time / baseline time).
    report = score([V06 / "external_tuning"], rules="v0.5", reference="baseline",
                   bootstrap_replicates=0)
    speedup = report.submission("shampoo").speedup
    assert 1 / speedup.geometric_mean == pytest.approx(0.8358343191311296, rel=1e-12)


def test_v05_rules_void_base_workloads_whose_held_out_variant_has_no_logs():
    # No v0.5 held-out variant was run for v0.6, so only the two families without one
    # (imagenet_vit, librispeech_deepspeech) can count.
    report = score([V06 / "external_tuning"], rules="v0.5", bootstrap_replicates=0)
    assert report.submission("shampoo").score == pytest.approx(1 / 8)
    assert report.submission("baseline").score == 0.0


def test_cli_json_lists_each_submission_with_name_score_and_workload_times(tmp_path):
    result = CliRunner().invoke(cli, ["score", str(V06 / "external_tuning"), "--format",
                                      "json", "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_name = {s["name"]: s for s in data["submissions"]}
    assert round(by_name["shampoo"]["score"], 4) == 0.6244
    assert by_name["baseline"]["times"]["wmt"] == pytest.approx(35319.428525447845)
    assert by_name["baseline"]["times"]["imagenet_resnet"] is None
    assert by_name["baseline"]["workloads"]["imagenet_resnet"]["status"] == "not reached"
