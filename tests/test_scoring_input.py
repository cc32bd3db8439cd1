"""Reading logs: layouts, dev workloads, protocol checks, and bad input as warnings."""

import base64
import json
import math
import subprocess
import sys
from pathlib import Path

import hypothesis.strategies as st
import pytest
from click.testing import CliRunner
from hypothesis import given, settings

from algoperf.cli import cli
from algoperf.errors import UserError
from algoperf.scoring import render, score
from algoperf.scoring.csvlog import parse_eval_measurements
from algoperf.scoring.discover import verification_dir
from algoperf.scoring.events import read_run_events
from algoperf.scoring.formats import format_time
from algoperf.workloads.registry import WORKLOADS

HEADER = "accumulated_submission_time,global_step,preemption_count,score,test/{m},validation/{m}"


def write_trial(experiment: Path, study: str, workload_dir: str, trial: str,
                metric_values=(0.5, 1.0), seconds_per_eval=10.0, text=None,
                events=None) -> Path:
    """A trial dir with an eval_measurements.csv (``text`` verbatim if given) and events."""
    path = experiment / study / workload_dir / trial
    path.mkdir(parents=True)
    if text is None:
        workload = workload_dir.rsplit("_", 1)[0]
        metric = WORKLOADS[workload].target_metric_name if workload in WORKLOADS else "accuracy"
        rows = [HEADER.format(m=metric)]
        for k, value in enumerate(metric_values, start=1):
            t = k * seconds_per_eval
            rows.append(f"{t},{k * 100},0,{t},{value},{value}")
        text = "\n".join(rows) + "\n"
    if isinstance(text, bytes):
        (path / "eval_measurements.csv").write_bytes(text)
    elif text is not False:
        (path / "eval_measurements.csv").write_text(text)
    if events is not None:
        (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def write_submission(root: Path, name: str, workload="digits", framework="jax", studies=2,
                     trials=3, seconds_per_eval=10.0, metric_values=(0.5, 1.0)) -> Path:
    for s in range(studies):
        for t in range(1, trials + 1):
            write_trial(root / name, f"study_{s}", f"{workload}_{framework}", f"trial_{t}",
                        metric_values, seconds_per_eval)
    return root / name


def kinds(report) -> list[str]:
    return [w.kind for w in report.warnings]


def run_event(kind, **data):
    return {"seq": 0, "type": kind, "t_wall": 0.0, "t_mono": 0.0, "data": data, "prev": ""}


# --- layouts -------------------------------------------------------------------------------

def test_a_leaderboard_directory_holds_one_submission_per_entry(tmp_path):
    write_submission(tmp_path, "fast", seconds_per_eval=10.0)
    write_submission(tmp_path, "slow", seconds_per_eval=20.0)
    report = score([tmp_path], bootstrap_replicates=0)
    assert [s.name for s in report.submissions] == ["fast", "slow"]
    assert report.submission("fast").score == 1.0
    assert report.submission("slow").score == pytest.approx(2 / 3, abs=3 / 99)  # ratio 2


def test_verify_output_beside_a_submission_is_not_read_as_a_submission(tmp_path):
    fast = write_submission(tmp_path, "fast")
    write_submission(tmp_path, "slow", seconds_per_eval=12.0)
    beside = verification_dir(fast)
    beside.mkdir()
    (beside / "report.txt").write_text("verify's report\n")
    report = score([tmp_path], bootstrap_replicates=0)
    assert beside == tmp_path / "fast.verification"
    assert [s.name for s in report.submissions] == ["fast", "slow"] and not report.warnings


def test_timestamp_suffixed_experiment_dirs_merge_into_one_submission(tmp_path):
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_1")
    write_trial(tmp_path / "exp-2025-01-02-03-04-05", "study_1", "digits_jax", "trial_1")
    for paths in ([tmp_path], [tmp_path / "exp"]):
        (sub,) = score(paths, bootstrap_replicates=0).submissions
        assert sub.name == "exp"
        assert [s.study for s in sub.workloads["digits"].studies] == ["study_0", "study_1"]


def test_the_same_trial_in_two_merged_dirs_is_a_duplicate_warning(tmp_path):
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_1")
    write_trial(tmp_path / "exp-2025-01-02-03-04-05", "study_0", "digits_jax", "trial_1")
    report = score([tmp_path / "exp"], bootstrap_replicates=0)
    assert "duplicate_trial" in kinds(report)
    assert len(report.submissions[0].workloads["digits"].studies[0].trials) == 2


def test_same_named_submissions_from_two_paths_get_distinct_names(tmp_path):
    a = write_submission(tmp_path / "a", "nadamw")
    b = write_submission(tmp_path / "b", "nadamw")
    report = score([a, b], bootstrap_replicates=0)
    assert sorted(s.name for s in report.submissions) == ["a/nadamw", "b/nadamw"]
    assert "duplicate_submission" in kinds(report)


def test_a_study_directory_is_rejected_with_a_hint_to_pass_its_parent(tmp_path):
    write_submission(tmp_path, "exp")
    with pytest.raises(UserError, match="pass its parent"):
        score([tmp_path / "exp" / "study_0"])


@pytest.mark.parametrize("make", [lambda p: p / "absent", lambda p: p])
def test_paths_without_logs_are_user_errors(tmp_path, make):
    with pytest.raises(UserError):
        score([make(tmp_path)])


def test_unknown_rules_ruleset_or_reference_are_user_errors(tmp_path):
    write_submission(tmp_path, "exp")
    for kwargs in ({"rules": "v9"}, {"ruleset": "both"}, {"reference": "nobody"}):
        with pytest.raises(UserError):
            score([tmp_path], **kwargs)


# --- workload sets and protocol -------------------------------------------------------------

def test_dev_workloads_present_form_the_workload_set(tmp_path):
    write_submission(tmp_path, "a", "digits")
    write_submission(tmp_path, "a", "mnist")
    write_submission(tmp_path, "b", "digits", seconds_per_eval=50.0)
    report = score([tmp_path], bootstrap_replicates=0)
    assert report.workloads == ("digits", "mnist") and report.workload_set.dev
    assert report.submission("a").score == 1.0
    assert report.submission("b").score == 0.0  # 5x slower on digits, no mnist logs
    assert "missing_workload" in kinds(report)


def test_dev_workload_counts_only_warn_when_submissions_differ(tmp_path):
    write_submission(tmp_path, "a", studies=2, trials=3)
    write_submission(tmp_path, "b", studies=2, trials=3)
    assert score([tmp_path], bootstrap_replicates=0).warnings == ()
    write_submission(tmp_path, "c", studies=1, trials=3)
    assert "inconsistent" in kinds(score([tmp_path], bootstrap_replicates=0))


def test_base_workloads_are_checked_against_the_rules_protocol(tmp_path):
    write_submission(tmp_path, "a", "ogbg", studies=2, trials=4, metric_values=(0.1, 0.3))
    report = score([tmp_path], rules="v0.6", bootstrap_replicates=0)
    assert report.workloads == tuple(
        ["criteo1tb", "fastmri", "imagenet_resnet", "imagenet_vit", "librispeech_conformer",
         "librispeech_deepspeech", "ogbg", "wmt"])
    messages = [str(w) for w in report.warnings if w.kind == "incomplete"]
    assert any("2 studies, rules v0.6 expect 3" in m for m in messages)
    assert sum("4 trials" in m for m in messages) == 2
    assert report.submissions[0].score == pytest.approx(1 / 8)


def test_self_tuning_expects_one_trial_per_study(tmp_path):
    write_submission(tmp_path, "a", "ogbg", studies=3, trials=2, metric_values=(0.3,))
    report = score([tmp_path], ruleset="self", bootstrap_replicates=0)
    assert any("expects 1" in str(w) for w in report.warnings if w.kind == "incomplete")


def test_dev_workloads_beside_base_workloads_are_reported_but_not_scored(tmp_path):
    write_submission(tmp_path, "a", "ogbg", studies=3, trials=5, metric_values=(0.3,))
    write_submission(tmp_path, "a", "digits")
    report = score([tmp_path], bootstrap_replicates=0)
    assert "digits" not in report.workloads
    assert "unscored_workload" in kinds(report)
    assert report.submissions[0].time("digits") == 20.0


def test_held_out_override_voids_a_base_workload_whose_variant_missed(tmp_path):
    write_submission(tmp_path, "a", "ogbg", studies=3, trials=5, metric_values=(0.3,))
    write_submission(tmp_path, "a", "ogbg_gelu", studies=3, trials=5, metric_values=(0.1,))
    plain = score([tmp_path], bootstrap_replicates=0)
    held = score([tmp_path], held_out=["ogbg_gelu"], bootstrap_replicates=0)
    assert plain.submissions[0].score == pytest.approx(1 / 8)
    assert held.submissions[0].score == 0.0
    assert held.submissions[0].status("ogbg") == "held-out variant missed"


def test_held_out_names_must_be_known_variants(tmp_path):
    write_submission(tmp_path, "a")
    for names in (["ogbg"], ["ogbg_nonsense"]):
        with pytest.raises(UserError):
            score([tmp_path], held_out=names)


# --- bad input becomes warnings -------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind"), [
    ("", "empty_csv"),
    (HEADER.format(m="accuracy") + "\n", "empty_csv"),
    (HEADER.format(m="accuracy") + "\n10,100,0,10,1.0,1.0,7,7\n", "malformed_csv"),
    (HEADER.format(m="accuracy") + "\n10,100,0,10,0.9\n", "malformed_csv"),
    (HEADER.format(m="accuracy") + "\n10,100,0,ten,1.0,1.0\n", "malformed_csv"),
    (HEADER.format(m="accuracy") + "\n10,100,0,10,nan,nan\n", "nan_metric"),
    ("global_step,score\n1,2\n", "malformed_csv"),
    (b"\x00\xff\xfe garbage\n\xc3", "malformed_csv"),
    (base64.b64encode(bytes(range(256))) + b"\n", "malformed_csv"),
])
def test_bad_csv_is_a_warning_and_the_trial_misses_the_target(tmp_path, text, kind):
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_1", text=text)
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_2")
    report = score([tmp_path], bootstrap_replicates=0)
    assert kind in kinds(report)
    trials = report.submissions[0].workloads["digits"].trials
    assert [t.trial.trial for t in trials] == ["trial_1", "trial_2"]
    assert trials[0].time_to_target == math.inf and trials[1].time_to_target == 20.0


GARBAGE = "\n".join(base64.b64encode(bytes(range(k, k + 57))).decode() for k in range(20))
GOOD_HEADER_GARBAGE_ROWS = HEADER.format(m="accuracy") + "".join(
    f"\n{GARBAGE[:20]},x{k},,{GARBAGE[20:30]},?,!" for k in range(5))


@pytest.mark.parametrize(("text", "why"), [
    (GARBAGE, "not an AlgoPerf eval log of digits: no 'global_step', "
              "'accumulated_submission_time' or 'validation/accuracy' column"),
    (GOOD_HEADER_GARBAGE_ROWS, "cells of the columns scoring reads are not numbers"),
    ("global_step,score\n1,2\n", "no 'validation/accuracy' column"),
])
def test_logs_that_are_not_algoperf_logs_are_refused_in_one_line_naming_the_file(tmp_path,
                                                                                  text, why):
    trial = write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_1", text=text)
    done = subprocess.run([sys.executable, "-m", "algoperf", "score", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {trial / 'eval_measurements.csv'}: ")
    assert why in done.stderr and "nothing to score" in done.stderr


def test_a_garbage_log_beside_good_trials_is_a_warning_that_strict_fails_on(tmp_path):
    write_submission(tmp_path, "exp", studies=1, trials=2)
    bad = write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_3", text=GARBAGE)
    report = score([tmp_path], bootstrap_replicates=0)
    (warning,) = [w for w in report.warnings if w.path == str(bad)]
    assert warning.kind == "malformed_csv" and "not an AlgoPerf eval log" in warning.message
    assert report.submissions[0].time("digits") == 20.0  # the good trials still count
    result = CliRunner().invoke(cli, ["score", str(tmp_path), "--strict", "--bootstrap", "0"])
    assert result.exit_code == 1
    assert "not an AlgoPerf eval log" in result.stderr


def test_a_trial_without_csv_is_skipped_with_a_warning(tmp_path):
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_1", text=False)
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_2")
    report = score([tmp_path], bootstrap_replicates=0)
    assert "missing_csv" in kinds(report)
    assert len(report.submissions[0].workloads["digits"].trials) == 1


def test_a_failed_run_end_makes_the_trial_a_crash_with_infinite_time(tmp_path):
    events = [run_event("run_start", workload="digits", ruleset="external"),
              run_event("run_end", status="failed", reason="error", error="NaN loss")]
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_1", events=events)
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_2", text=False, events=events)
    report = score([tmp_path], bootstrap_replicates=0)
    crashes = [w for w in report.warnings if w.kind == "crashed_trial"]
    assert len(crashes) == 2 and "NaN loss" in str(crashes[0])
    trials = report.submissions[0].workloads["digits"].trials
    assert [t.time_to_target for t in trials] == [math.inf, math.inf]
    assert report.submissions[0].status("digits") == "not reached"


def test_completed_events_add_no_warning_and_unfinished_ones_do(tmp_path):
    done = [run_event("run_start", ruleset="external"), run_event("eval"),
            run_event("run_end", status="completed")]
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_1", events=done)
    assert score([tmp_path], bootstrap_replicates=0).warnings == ()
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_2", events=done[:2])
    assert "unfinished_trial" in kinds(score([tmp_path], bootstrap_replicates=0))


def test_events_recorded_under_other_rules_warn_to_pass_them(tmp_path):
    events = [run_event("run_start", ruleset="self", rules_version="v0.5"),
              run_event("run_end", status="completed")]
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_1", events=events)
    report = score([tmp_path], rules="v0.6", ruleset="external", bootstrap_replicates=0)
    messages = [str(w) for w in report.warnings if w.kind == "rules_mismatch"]
    assert len(messages) == 2
    assert "--ruleset self" in messages[0] and "--rules v0.5" in messages[1]


def test_ruleset_and_rules_default_to_the_ones_the_runs_record(tmp_path):
    events = [run_event("run_start", ruleset="self", rules_version="v0.5"),
              run_event("run_end", status="completed")]
    write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_1", events=events)
    report = score([tmp_path], bootstrap_replicates=0)
    assert (report.ruleset, report.rules) == ("self", "v0.5")
    assert "rules_mismatch" not in kinds(report)


def test_submissions_recording_another_ruleset_than_the_rest_share_one_warning(tmp_path):
    for name, ruleset in (("a", "self"), ("b", "self"), ("c", "external"), ("d", "external"),
                          ("e", "external")):
        events = [run_event("run_start", ruleset=ruleset),
                  run_event("run_end", status="completed")]
        write_trial(tmp_path / name, "study_0", "digits_jax", "trial_1", events=events)
    report = score([tmp_path], bootstrap_replicates=0)
    assert report.ruleset == "external"
    (warning,) = [w for w in report.warnings if w.kind == "rules_mismatch"]
    assert warning.message.startswith("a, b run under the 'self' tuning ruleset but are scored "
                                      "under the 'external' tuning ruleset")


def test_unreadable_events_are_a_warning(tmp_path):
    path = write_trial(tmp_path / "exp", "study_0", "digits_jax", "trial_1")
    (path / "events.jsonl").write_text('{"type": "run_start"\n[1, 2]\n')
    report = score([tmp_path], bootstrap_replicates=0)
    assert kinds(report).count("malformed_events") == 2
    assert report.submissions[0].score == 1.0


def test_unknown_workload_dirs_are_skipped_with_a_suggestion(tmp_path):
    write_submission(tmp_path, "exp")
    write_trial(tmp_path / "exp", "study_0", "digitz_jax", "trial_1")
    report = score([tmp_path], bootstrap_replicates=0)
    (warning,) = [w for w in report.warnings if w.kind == "unknown_workload"]
    assert "did you mean 'digits'" in str(warning)


def test_events_reader_returns_none_without_a_file(tmp_path):
    assert read_run_events(tmp_path) is None


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('0123456789.,-naife"\n\r x/')), max_size=300))
def test_the_csv_parser_never_raises_on_arbitrary_text(text):
    log = parse_eval_measurements(text)
    assert all(len(v) == log.n_evals for v in log.columns.values())


# --- the command line -----------------------------------------------------------------------

def test_strict_exits_non_zero_and_lists_every_warning(tmp_path):
    write_submission(tmp_path, "exp")
    write_trial(tmp_path / "exp", "study_1", "digits_jax", "trial_9", text="")
    write_trial(tmp_path / "exp", "study_1", "digitz_jax", "trial_1")
    result = CliRunner().invoke(cli, ["score", str(tmp_path), "--strict", "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert len(report["warnings"]) >= 3
    for warning in report["warnings"]:
        assert warning["message"] in result.stderr


def test_strict_passes_on_clean_logs(tmp_path):
    write_submission(tmp_path, "exp")
    result = CliRunner().invoke(cli, ["score", str(tmp_path), "--strict", "--bootstrap", "0"])
    assert result.exit_code == 0, result.output


def test_cli_bad_input_is_one_line_without_traceback(tmp_path):
    bad_held_out = tmp_path / "held_out.json"
    bad_held_out.write_text("{not json")
    write_submission(tmp_path, "exp")
    from algoperf import cli as cli_module
    for args in (["score", str(tmp_path / "missing")],
                 ["score", str(tmp_path), "--held-out", str(bad_held_out)],
                 ["score", str(tmp_path), "--reference", "nobody"]):
        result = CliRunner().invoke(cli_module.cli, args)
        assert isinstance(result.exception, UserError), args
        assert "\n" not in str(result.exception)


def test_a_large_leaderboard_renders_every_time_whole_at_any_width(tmp_path):
    """17 submissions (v0.5's leaderboard had 18): rich would squeeze the time columns to
    nothing; the table is cut into parts that fit instead."""
    for k in range(17):
        write_submission(tmp_path, f"submission_number_{k:02d}", seconds_per_eval=10.0 + k)
    report = score([tmp_path], bootstrap_replicates=0)
    text = render(report, "table", width=100)
    assert all(len(line) <= 100 for line in text.splitlines() if "│" in line)  # table rows
    assert "…" not in text
    for k in range(17):
        sub = report.submission(f"submission_number_{k:02d}")
        assert f"submission_number_{k:02d}" in text
        assert format_time(sub, "digits") in text
