"""Verifying a trial of AlgoPerf's own logs: no event log, no signatures, only consistency.

AlgoPerf writes ``eval_measurements.csv``, ``flags_<p>.json``, ``meta_data_<p>.json`` and (under
external tuning) ``hparams.json``. Nothing is hashed or signed, so such a trial can never be
certified; what can be checked is that the files agree with each other and with the
directory they sit in, and that the eval rows obey the timing invariants of AlgoPerf's clock
(`timing`) under the budget and eval period of the rules they ran under.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from algoperf.errors import UserError
from algoperf.hashing import file_sha256, tree_files
from algoperf.logs.trial_files import HPARAMS_FILENAME
from algoperf.scoring.discover import TRIAL_DIR, WORKLOAD_DIR
from algoperf.verification.context import read_json_file
from algoperf.verification.findings import (
    SKIP,
    UNCERTIFIABLE,
    Check,
    Problem,
    TrialVerdict,
    check,
)
from algoperf.verification.timing import CLOCKS, EvalPoint, check_timing
from algoperf.workloads import registry

CSV_NAME = "eval_measurements.csv"
REQUIRED_COLUMNS = ("global_step", "total_duration", *CLOCKS)


def read_rows(data: bytes, name: str) -> tuple[list[tuple[int, dict[str, str]]], list[Problem]]:
    """The rows of an eval CSV with their line numbers, and what is wrong with the file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return [], [Problem(name, None, f"not UTF-8 text ({e.reason} at byte {e.start})")]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        table = [(reader.line_num, row) for row in reader]
    except csv.Error as e:
        return [], [Problem(name, reader.line_num, f"not readable as CSV ({e})")]
    if not table:
        return [], [Problem(name, None, "empty: no header")]
    header = table[0][1]
    problems = [Problem(name, 1, f"no {column} column") for column in REQUIRED_COLUMNS
                if column not in header]
    if "score" not in header and "accumulated_submission_time" not in header:
        problems.append(Problem(name, 1, "no score column"))
    rows = []
    for line, row in table[1:]:
        if len(row) != len(header):
            problems.append(Problem(name, line, f"{len(row)} cells, the header has "
                                    f"{len(header)}"))
            continue
        rows.append((line, dict(zip(header, row, strict=True))))
    return rows, problems


def _segment(cells: dict[str, str]) -> int:
    try:
        return int(float(cells.get("preemption_count") or 0))
    except ValueError:
        return -1


def _step(cells: dict[str, str]) -> float:
    try:
        return float(cells.get("global_step", "nan"))
    except ValueError:
        return float("nan")


def verify_legacy_trial(root: str | os.PathLike, path: str | os.PathLike,
                        rules: str = registry.DEFAULT_RULES) -> TrialVerdict:
    """Consistency checks of an AlgoPerf trial directory; ``rules``: the rules version whose
    budgets apply (AlgoPerf's files do not record it)."""
    root, path = Path(root), Path(path)
    rel = path.relative_to(root).as_posix()

    def name(file: str) -> str:
        return f"{rel}/{file}"

    flags, flags_problem = read_json_file(path / "flags_0.json")
    meta, meta_problem = read_json_file(path / "meta_data_0.json")
    identity = [Problem(name(f), None, p) for f, p in (("flags_0.json", flags_problem),
                                                       ("meta_data_0.json", meta_problem)) if p]
    identity += _identity_problems(path, name, flags, meta)
    checks = [check("trial identity", identity, "directory, flags, meta data and hparams "
                    "agree")]
    ruleset = flags.get("tuning_ruleset") if isinstance(flags, dict) else None
    workload = WORKLOAD_DIR.match(path.parent.name)
    try:
        data = (path / CSV_NAME).read_bytes()
    except FileNotFoundError:
        data = None
    if data is None:
        checks.append(Check("eval csv", SKIP, "no eval_measurements.csv: the trial logged no "
                            "evals (AlgoPerf's scoring skips it)"))
    else:
        rows, problems = read_rows(data, name(CSV_NAME))
        checks.append(check("eval csv", problems, f"{len(rows)} eval rows, all columns "
                            "present"))
        checks.append(_timing(rows, name(CSV_NAME), meta, workload and workload.group(1),
                              ruleset, rules))
    checks.append(Check("signature", UNCERTIFIABLE, "legacy AlgoPerf logs: no event log, "
                        "nothing signed or witnessed"))
    checks.append(Check("measurement", SKIP, "not recorded (AlgoPerf's logs have no "
                        "measurement-quality record)"))
    files = {name(f): file_sha256(path / f) for f in tree_files(path)}
    facts = {"workload": workload.group(1) if workload else None,
             "framework": workload.group(2) if workload else None,
             "seed": flags.get("rng_seed") if isinstance(flags, dict) else None,
             "ruleset": ruleset, "rules_version": None,
             "study": path.parent.parent.name, "trial": path.name}
    size = sum((path / f).stat().st_size for f in tree_files(path))
    return TrialVerdict(rel, "legacy", checks, files, size, facts)


def _timing(rows: list[tuple[int, dict[str, str]]], name: str, meta: Any,
            workload: str | None, ruleset: str | None, rules: str) -> Check:
    try:
        info = registry.get_workload(workload or "")
    except UserError:
        return Check("timing", SKIP, f"unknown workload {workload!r}: no budget or eval period")
    period = meta.get("workload.eval_period_time_sec") if isinstance(meta, dict) else None
    if not isinstance(period, int | float):
        period = info.eval_period_time_sec
    budget = registry.get_rules(rules).budget(info.name, ruleset or "external")
    points = [EvalPoint.from_metrics(name, line, _segment(cells), _step(cells),
                                     _with_score(cells), _segment(cells) == 0)
              for line, cells in rows]
    # AlgoPerf's files do not say why training stopped, so a final eval may have been forced.
    problems = check_timing(points, float(period), budget, final_eval_forced=True)
    return check("timing", problems, f"clocks consistent over {len(points)} evals; evals "
                 f"{period:g}s apart or more; all within the {budget:g}s budget of rules "
                 f"{rules}")


def _with_score(cells: dict[str, str]) -> dict[str, str]:
    if "score" in cells:
        return cells
    return {**cells, "score": cells.get("accumulated_submission_time", "")}


def _identity_problems(path: Path, name, flags: Any, meta: Any) -> list[Problem]:
    if not isinstance(flags, dict):
        return [Problem(name("flags_0.json"), None, "missing: AlgoPerf writes it for every "
                        "trial")] if flags is None else []
    problems = []
    workload = WORKLOAD_DIR.match(path.parent.name)
    said = {"workload": flags.get("workload"), "framework": flags.get("framework")}
    found = {"workload": workload.group(1) if workload else None,
             "framework": workload.group(2) if workload else None}
    for key, value in said.items():
        if value != found[key]:
            problems.append(Problem(name("flags_0.json"), None, f"{key} is {value!r}, but the "
                                    f"directory says {found[key]!r}"))
    study = path.parent.parent.name
    experiment = str(flags.get("experiment_name") or "")
    last = experiment.rstrip("/").rsplit("/", 1)[-1]
    if last.startswith("study_") and last != study:
        problems.append(Problem(name("flags_0.json"), None, f"ran as {last}, but sits in "
                                f"{study}: trial directories were moved or swapped"))
    trial = TRIAL_DIR.match(path.name)
    start = flags.get("hparam_start_index")
    if trial and isinstance(start, int) and start != int(trial.group(1)) - 1:
        problems.append(Problem(name("flags_0.json"), None, f"ran hyperparameter point "
                                f"{start + 1}, but sits in {path.name}: trial directories "
                                "were moved or swapped"))
    if isinstance(meta, dict) and meta.get("rng_seed") != flags.get("rng_seed"):
        problems.append(Problem(name("meta_data_0.json"), None, "rng_seed differs from "
                                "flags_0.json's"))
    if flags.get("tuning_ruleset") == "external" and not (path / HPARAMS_FILENAME).exists():
        problems.append(Problem(name(HPARAMS_FILENAME), None, "missing for an external-tuning "
                                "trial"))
    return problems
