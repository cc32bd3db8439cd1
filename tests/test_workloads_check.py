"""`algoperf workloads check NAME`: every implemented registry row, in both frameworks, builds on
synthetic data in its prepared format, has the registry's parameter count, takes a NAdamW step
and evaluates; bad names are one line; the `algoperf workloads` listing is unchanged.

The real CLI runs once per registry row (both frameworks in one process: one JAX and one
PyTorch import per row); the parametrised tests read that row's JSON lines, so a new
implemented row is covered with no new test code.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest
from click.testing import CliRunner

from algoperf.workloads import registry

SPLITS = ("train", "validation", "test")
_RUNS: dict[str, subprocess.CompletedProcess] = {}


def algoperf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "algoperf", *args], capture_output=True,
                          text=True, timeout=900)


def checked(name: str) -> subprocess.CompletedProcess:
    """`algoperf workloads check NAME --json`, run once per row for the whole module."""
    if name not in _RUNS:
        _RUNS[name] = algoperf("workloads", "check", name, "--json")
    return _RUNS[name]


def json_lines(done: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines()]


def assert_one_line_error(done: subprocess.CompletedProcess, text: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and text in lines[0], lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("framework", registry.FRAMEWORKS)
@pytest.mark.parametrize("name", registry.implemented())
def test_check_passes_with_the_registrys_param_count_and_every_eval_metric(name, framework):
    done = checked(name)
    records = json_lines(done)  # stdout holds nothing but one JSON line per framework
    assert [r["framework"] for r in records] == list(registry.FRAMEWORKS), done.stderr
    record = records[registry.FRAMEWORKS.index(framework)]
    info = registry.get_workload(name)
    assert record["workload"] == name
    assert record["ok"] is True, record["problems"]
    assert record["param_count"] == record["expected_param_count"] \
        == info.expected_param_count(framework)
    assert record["train_step_s"] > 0 and math.isfinite(record["loss"])
    splits = SPLITS if info.test_target_value is not None else SPLITS[:-1]  # finewebedu_lm
    for split in splits:
        for metric in info.metrics:
            assert math.isfinite(record["eval_metrics"][f"{split}/{metric}"])
    assert done.returncode == 0, done.stderr


def test_check_of_one_framework_prints_a_report_with_only_that_framework():
    done = algoperf("workloads", "check", "digits_silu", "--framework", "pytorch")
    assert done.returncode == 0, done.stderr
    assert "algoperf workloads check digits_silu" in done.stdout
    assert "pytorch" in done.stdout and "jax" not in done.stdout
    assert "85,002 = registry 85,002" in done.stdout and "ok" in done.stdout
    assert "the submission's get_batch_size" in done.stdout  # digits' 64, from the base row
    assert "{" not in done.stdout  # no JSON in the human-readable report
    assert "timing one training step" in done.stderr  # progress goes to stderr


def test_unknown_workload_is_one_line_with_a_suggestion():
    assert_one_line_error(algoperf("workloads", "check", "digitz", "--json"),
                          "unknown workload 'digitz'. Did you mean 'digits'?")


def test_registry_row_without_an_implementation_is_one_line_listing_the_implemented():
    missing = [name for name, row in registry.WORKLOADS.items() if not row.implemented]
    if not missing:
        pytest.skip("every registry row is implemented")
    assert_one_line_error(algoperf("workloads", "check", missing[0]),
                          f"implemented: {', '.join(registry.implemented())}")


def test_listing_without_subcommand_prints_the_table_and_imports_no_framework():
    # The real entry point, with a note on stderr of the frameworks imported by the end.
    code = ("import atexit, sys; atexit.register(lambda: print('imported:', "
            "[m for m in ('jax', 'torch', 'flax') if m in sys.modules], file=sys.stderr)); "
            "sys.argv = ['algoperf', 'workloads', '--rules', 'v0.5', '--all']; "
            "from algoperf.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "workloads, rules v0.5" in done.stdout
    assert "digits_silu" in done.stdout and "63008" in done.stdout  # variants, v0.5 budget
    assert "imported: []" in done.stderr


@pytest.mark.parametrize(("change", "problem"), [
    ({"param_count": 1}, "85,002 parameters, the registry says 1"),
    ({"metrics": ("accuracy", "loss", "ppl")}, "eval_model returned no train/ppl"),
])
def test_a_check_that_does_not_hold_is_reported_and_exits_1(monkeypatch, change, problem):
    from algoperf import random_utils
    from algoperf.cli import cli

    # The check selects PyTorch's rngs; monkeypatch puts the session's choice back.
    monkeypatch.setattr(random_utils, "_framework", random_utils.get_framework())

    row = dataclasses.replace(registry.get_workload("digits"), **change)
    monkeypatch.setitem(registry.WORKLOADS, "digits", row)
    done = CliRunner().invoke(cli, ["workloads", "check", "digits", "--framework", "pytorch",
                                    "--json"])
    assert done.exit_code == 1, done.output
    (record,) = json_lines(done)
    assert record["ok"] is False and problem in record["problems"]
