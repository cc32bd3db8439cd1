"""Scoring reproduces AlgoPerf's published v0.6 results from the real leaderboard logs."""

import json
import math
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import ALGOPERF_LOGS

from algoperf.cli import cli
from algoperf.errors import UserError
from algoperf.scoring import score
from algoperf.scoring.discover import find_leaderboards, find_trials
from algoperf.verification.scores import load_claims
from algoperf.verification.verify import verify

V06 = ALGOPERF_LOGS / "v0.6"


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


# --- one folder holding both leaderboards ---------------------------------------------------

def both_leaderboards(tmp_path):
    """external_tuning/ and self_tuning/ of the real v0.6 logs under one folder."""
    root = tmp_path / "leaderboards"
    for board in ("external_tuning", "self_tuning"):
        shutil.copytree(V06 / board, root / board)
    return root


def algoperf(*args):
    return subprocess.run([sys.executable, "-m", "algoperf", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_a_folder_holding_external_and_self_tuning_scores_both_under_their_recorded_rulesets(
        tmp_path):
    root, out = both_leaderboards(tmp_path), tmp_path / "out"
    done = algoperf("score", root, "--format", "json", "--bootstrap", "0", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "warning:" not in done.stderr
    boards = {b["leaderboard"]: b for b in json.loads(done.stdout)["leaderboards"]}
    assert set(boards) == {"external_tuning", "self_tuning"}
    assert boards["external_tuning"]["ruleset"] == "external"
    assert boards["self_tuning"]["ruleset"] == "self"
    external = {s["name"]: round(s["score"], 4) for s in boards["external_tuning"]["submissions"]}
    assert external == PUBLISHED
    (self_tuned,) = boards["self_tuning"]["submissions"]
    assert self_tuned["name"] == "schedule_free_adamw_v2"
    assert self_tuned["score"] == pytest.approx(0.75, abs=1e-12)
    for board in boards.values():
        assert not [w for w in board["warnings"] if w["kind"] == "rules_mismatch"]
    # --out: one folder per leaderboard, each titled with its name, and both in report.json
    assert json.loads((out / "report.json").read_text()) == json.loads(done.stdout)
    assert "shampoo" in (out / "external_tuning" / "scores.csv").read_text()
    assert "schedule_free_adamw_v2" in (out / "self_tuning" / "scores.csv").read_text()
    for board, ruleset in (("external_tuning", "external"), ("self_tuning", "self")):
        heading = f"AlgoPerf leaderboard {board} (rules v0.6, {ruleset} tuning)"
        assert heading in (out / board / "leaderboard.txt").read_text().splitlines()
        assert f"## {heading}" in (out / board / "leaderboard.md").read_text()


def test_the_terminal_table_of_two_leaderboards_names_each(tmp_path):
    result = CliRunner().invoke(cli, ["score", str(both_leaderboards(tmp_path)),
                                      "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "AlgoPerf leaderboard external_tuning (rules v0.6, external tuning)" in lines
    assert "AlgoPerf leaderboard self_tuning (rules v0.6, self tuning)" in lines


def test_an_explicit_ruleset_contradicting_the_recorded_one_is_one_warning_line(tmp_path):
    done = algoperf("score", both_leaderboards(tmp_path), "--ruleset", "external",
                    "--format", "csv", "--bootstrap", "0")
    assert done.returncode == 0, done.stderr
    (warning,) = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warning.startswith("warning: self_tuning: schedule_free_adamw_v2 ran under the "
                              "'self' tuning ruleset but is scored under the 'external'")
    assert "--ruleset self" in warning and "Traceback" not in done.stderr
    rows = [line.split(",")[:3] for line in done.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == ["external_tuning", "external_tuning", "self_tuning"]


def test_score_and_verify_find_the_same_leaderboards_in_one_folder(tmp_path):
    root = both_leaderboards(tmp_path)
    verified = sorted(p.relative_to(root.resolve()).as_posix()
                      for p in find_trials(root).leaderboards())
    assert [label for label, _ in find_leaderboards([root])] == verified == [
        "external_tuning", "self_tuning"]
    with pytest.raises(UserError, match="holds 2 leaderboards"):
        score([root])  # one leaderboard at a time; score_leaderboards scores each
    with pytest.raises(UserError, match="pass it alone"):
        find_leaderboards([root, V06 / "external_tuning"])


def test_verify_accepts_a_two_leaderboard_score_report_as_claims(tmp_path):
    root, out = both_leaderboards(tmp_path), tmp_path / "out"
    assert algoperf("score", root, "--bootstrap", "0", "--out", out).returncode == 0
    result = verify(root, claims=load_claims(out))
    (claim,) = [c for c in result.checks if c.name == "claims"]
    assert claim.status == "pass" and claim.summary.startswith("27 claimed numbers agree"), claim
