"""`algoperf check`: a corpus of bad submissions, one per rule, each flagged at its line with
its rule; the reference submissions, the templates and AlgoPerf's own baselines and published
leaderboard submissions pass; docker run and sweep plan refuse a bad submission before any job.

The bad submissions are a clean template with one violation spliced in, marked ``# <-`` on the
line the checker must name. AlgoPerf's code is read from a copy of its repositories named
by ``$ALGOPERF_REPO`` (mlcommons/algorithmic-efficiency) and ``$ALGOPERF_SUBMISSIONS_REPO``
(mlcommons/submissions_algorithms), each a checkout or a bare git repository; the repository
ships none of that code, so those two tests skip without the variables.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from algoperf import submission
from algoperf import submission_check as sc
from algoperf.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
ALGOPERF_REPO = os.environ.get("ALGOPERF_REPO")
SUBMISSIONS_REPO = os.environ.get("ALGOPERF_SUBMISSIONS_REPO")

CLEAN = '''\
"""A clean submission; each case below splices one violation into it."""
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax

from algoperf import spec
#MODULE

_BATCH_SIZES = {"digits": 64, "mnist": 16}


def get_batch_size(workload_name):
    #BATCH
    return _BATCH_SIZES[workload_name]


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {"lr": hyperparameters.learning_rate}


def update_params(workload, current_param_container, current_params_types, model_state,
                  hyperparameters, batch, loss_type, optimizer_state, eval_results,
                  global_step, rng, train_state=None):
    lr = optimizer_state["lr"]
    #UPDATE
    return optimizer_state, current_param_container, model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state,
                     hyperparameters, loss_type, optimizer_state, eval_results, global_step,
                     rng):
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container,
                   model_state, hyperparameters, global_step, rng):
    return next(input_queue)
'''

# name: (rule, where, code); the line marked `# <-` is the one the finding must name.
BAD = {
    "imports_the_runner": (sc.IMPORTS, "MODULE", "from algoperf import runner  # <-"),
    "imports_checkpoints": (sc.IMPORTS, "MODULE", "import algoperf.checkpoints  # <-"),
    "imports_a_workload": (sc.IMPORTS, "MODULE",
                           "from algoperf.workloads.wmt import workload  # <-"),
    "imports_submission_runner": (sc.IMPORTS, "MODULE", "import submission_runner  # <-"),
    "v05_package_runner": (sc.IMPORTS, "MODULE",
                           "from algorithmic_efficiency import logger_utils  # <-"),
    "type_name": (sc.IDENTITY, "UPDATE",
                  'if type(workload).__name__ == "WmtWorkload":  # <-\n    lr = 0.1'),
    "class_attribute": (sc.IDENTITY, "UPDATE",
                        "name = workload.__class__.__name__  # <-"),
    "isinstance_class": (sc.IDENTITY, "UPDATE",
                         "if isinstance(workload, jax.Array):  # <-\n    lr = 0.1"),
    "isinstance_named_workload": (sc.IDENTITY, "UPDATE",
                                  "if isinstance(current_param_container, WmtWorkload):  # <-"
                                  "\n    lr = 0.1"),
    "aliased_workload": (sc.IDENTITY, "UPDATE", "w = workload\nkind = type(w)  # <-"),
    "registry_name": (sc.IDENTITY, "UPDATE", "name = workload.workload_name  # <-"),
    "variant_setting": (sc.IDENTITY, "UPDATE", "if workload.use_silu:  # <-\n    lr = 0.1"),
    "workload_name_literal": (sc.IDENTITY, "UPDATE",
                              'if loss_type in ("ogbg", "wmt"):  # <-\n    lr = 0.1'),
    "match_workload_name": (sc.IDENTITY, "UPDATE",
                            'match str(lr):\n    case "imagenet_vit":  # <-\n        lr = 0.1'),
    "per_workload_table_in_function": (sc.IDENTITY, "UPDATE",
                                       'lrs = {"wmt": 0.1, "ogbg": 0.2}  # <-'),
    "per_workload_table_read": (sc.IDENTITY, "UPDATE", "lr = _BATCH_SIZES.get(lr)  # <-"),
    "name_leaked_from_get_batch_size": (sc.IDENTITY, "BATCH",
                                        "global NAME\nNAME = workload_name  # <-"),
    "fingerprint": (sc.IDENTITY, "UPDATE",
                    "if workload.num_train_examples == 1_281_167:  # <-\n    lr = 0.1"),
    "patches_time": (sc.CLOCK, "UPDATE", "time.perf_counter = lambda: 0.0  # <-"),
    "patches_time_by_setattr": (sc.CLOCK, "MODULE",
                                'setattr(time, "time", lambda: 0.0)  # <-'),
    "patches_aliased_time": (sc.CLOCK, "MODULE",
                             "import time as clock\nclock.monotonic = None  # <-"),
    "writes_train_state": (sc.CLOCK, "UPDATE",
                           'train_state["accumulated_submission_time"] = 0.0  # <-'),
    "updates_train_state": (sc.CLOCK, "UPDATE", "train_state.clear()  # <-"),
    "reads_runner_frame": (sc.CLOCK, "UPDATE", "frame = sys._getframe(1)  # <-"),
    "frame_locals": (sc.CLOCK, "UPDATE", "caller = rng.f_back  # <-"),
    "replaces_a_module": (sc.CLOCK, "MODULE", 'sys.modules["time"] = None  # <-'),
    "replaces_device_sync": (sc.CLOCK, "MODULE", "jax.block_until_ready = id  # <-"),
    "modifies_loss_fn": (sc.FIXED, "UPDATE", "workload.loss_fn = None  # <-"),
    "builds_own_input_queue": (sc.FIXED, "UPDATE",
                               'queue = workload._build_input_queue(rng, "train", None, 8)'
                               "  # <-"),
    "private_workload_member": (sc.FIXED, "UPDATE", "shapes = workload._param_shapes  # <-"),
    "sets_environment": (sc.ENVIRONMENT, "MODULE", 'os.environ["XLA_FLAGS"] = ""  # <-'),
    "updates_environment": (sc.ENVIRONMENT, "UPDATE",
                            'os.environ.update(TF_CPP_MIN_LOG_LEVEL="3")  # <-'),
    "putenv": (sc.ENVIRONMENT, "UPDATE", 'os.putenv("OMP_NUM_THREADS", "1")  # <-'),
    "opens_absolute_path": (sc.FILES, "UPDATE",
                            'with open("/tmp/leak.txt", "w") as f:  # <-\n    f.write("x")'),
    "opens_home_fstring": (sc.FILES, "UPDATE",
                           'f = open(f"~/{global_step}.txt", mode="a")  # <-'),
    "opens_parent_folder": (sc.FILES, "UPDATE", 'f = open("../results.csv", "w")  # <-'),
    "path_write_text": (sc.FILES, "UPDATE", 'Path("/etc/motd").write_text("")  # <-'),
    "removes_a_file": (sc.FILES, "UPDATE", 'os.remove("eval_measurements.csv")  # <-'),
    "rmtree": (sc.FILES, "UPDATE", 'shutil.rmtree("checkpoints")  # <-'),
    "unlinks_a_path": (sc.FILES, "UPDATE", 'Path("hparams.json").unlink()  # <-'),
    "runs_a_command": (sc.FILES, "UPDATE", 'subprocess.run(["rm", "-rf", "x"])  # <-'),
    "copies_outside": (sc.FILES, "UPDATE", 'shutil.copy("a", "/tmp/b")  # <-'),
}

# Forms close to the violations above that have generic uses: none is flagged.
GENERIC = {
    "base_workload_class": "ok = isinstance(workload, spec.Workload)",
    "metric_direction": 'lower = workload.target_metric_name in ("loss", "wer", "ssim")',
    "loss_type_branch": "if loss_type == spec.LossType.CTC_LOSS:\n    lr = 0.1",
    "schedule_from_step_hint": "warmup = int(0.05 * workload.step_hint)",
    "shapes_for_memory": "big = any(s.shape_tuple[0] > 4096 for s in "
                         "jax.tree.leaves(workload.param_shapes))",
    "reads_a_file": 'text = open("notes.txt").read()',
    "writes_relative_file": 'open("stats.txt", "w").write("x")',
    "reads_environment": 'rank = int(os.environ.get("RANK", "0"))',
    "reads_train_state": 'elapsed = train_state["accumulated_submission_time"]',
    "reads_the_clock": "t0 = time.perf_counter()",
    "string_replace": 'name = "a".replace("a", "b")',
    "batch_size_name_compare_in_get_batch_size": None,  # CLEAN's own get_batch_size table
}


def splice(where: str, code: str) -> str:
    """CLEAN with ``code`` at the ``#WHERE`` marker, indented to it."""
    marker = f"#{where}"
    line = next(x for x in CLEAN.splitlines() if x.strip() == marker)
    indent = line[:len(line) - len(line.lstrip())]
    return CLEAN.replace(line, textwrap.indent(code, indent))


def write(tmp_path: Path, text: str, name: str = "submission.py") -> Path:
    folder = tmp_path / "sub"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    (folder / "tuning_search_space.json").write_text('{"learning_rate": {"feasible_points": '
                                                     "[0.1]}}")
    return folder / name


def marked_line(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line)


def test_clean_template_has_no_findings(tmp_path):
    assert sc.check_submission(write(tmp_path, CLEAN)) == []


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_submission_is_flagged_at_its_line_with_its_rule(case, tmp_path):
    rule, where, code = BAD[case]
    text = splice(where, code)
    path = write(tmp_path, text)
    findings = sc.check_submission(path)
    assert [(f.line, f.rule, f.severity) for f in findings] == [
        (marked_line(text), rule, sc.VIOLATION)], [str(f) for f in findings]


@pytest.mark.parametrize("case", sorted(k for k, v in GENERIC.items() if v))
def test_generic_uses_close_to_a_rule_are_not_flagged(case, tmp_path):
    path = write(tmp_path, splice("UPDATE", GENERIC[case]))
    assert sc.check_submission(path) == []


def test_missing_function_and_wrong_signature_are_submission_api_violations(tmp_path):
    no_data_selection = CLEAN[:CLEAN.index("def data_selection")]
    assert [(f.line, f.rule) for f in sc.check_submission(write(tmp_path, no_data_selection))] \
        == [(1, sc.API)]
    text = CLEAN.replace("optimizer_state, eval_results,\n                  global_step",
                         "optimizer_state,\n                  global_step")
    findings = sc.check_submission(write(tmp_path, text))
    assert [(f.line, f.rule) for f in findings] == [(marked_def(text, "update_params"), sc.API)]
    assert "lacks parameter(s) eval_results" in findings[0].message
    positional = CLEAN.replace("def get_batch_size(workload_name)",
                               "def get_batch_size(workload_name, extra)")
    findings = sc.check_submission(write(tmp_path, positional))
    assert [(f.rule, f.line) for f in findings] == [(sc.API, marked_def(positional,
                                                                        "get_batch_size"))]


def marked_def(text: str, name: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1)
                if line.startswith(f"def {name}("))


def test_get_eval_batch_size_is_refused_and_v05_prepare_for_eval_is_a_warning(tmp_path):
    text = CLEAN + "\n\ndef get_eval_batch_size(workload_name):\n    return 8\n"
    path = write(tmp_path, text)
    assert [(f.rule, f.line) for f in sc.check_submission(path)] == [
        (sc.EVAL_BATCH, marked_def(text, "get_eval_batch_size"))]
    findings = sc.check_submission(write(tmp_path, CLEAN), rules="v0.5")
    assert [(f.rule, f.severity) for f in findings] == [(sc.RULES_VERSION, sc.WARNING)]


def test_threads_are_a_warning_not_a_violation(tmp_path):
    text = splice("UPDATE", "threading.Thread(target=print).start()  # <-")
    findings = sc.check_submission(write(tmp_path, text))
    assert [(f.line, f.rule, f.severity) for f in findings] == [
        (marked_line(text), sc.THREADS, sc.WARNING)]
    assert sc.violations(findings) == []


def test_helper_modules_the_submission_imports_are_checked_and_others_not(tmp_path):
    path = write(tmp_path, splice("MODULE", "import helper\nfrom pkg.inner import tool"))
    (path.parent / "helper.py").write_text("import time\ntime.time = None\n")
    (path.parent / "pkg").mkdir()
    (path.parent / "pkg" / "__init__.py").write_text("")
    (path.parent / "pkg" / "inner.py").write_text("from . import deeper\n")
    (path.parent / "pkg" / "deeper.py").write_text('import os\nos.environ["A"] = "1"\n')
    (path.parent / "examples").mkdir()
    (path.parent / "examples" / "demo.py").write_text('import os\nos.remove("x")\n')
    found = {(f.path.name, f.line, f.rule) for f in sc.check_submission(path)}
    assert found == {("helper.py", 2, sc.CLOCK), ("deeper.py", 2, sc.ENVIRONMENT)}


def test_search_space_expectations_follow_the_ruleset(tmp_path):
    path = write(tmp_path, CLEAN)
    assert sc.check_submission(path, ruleset="external") == []
    (path.parent / "tuning_search_space.json").unlink()
    assert [(f.rule, f.severity) for f in sc.check_submission(path)] == [
        (sc.SEARCH_SPACE, sc.WARNING)]
    assert sc.check_submission(path, ruleset="self") == []


def test_bad_input_is_one_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        sc.check_submission(tmp_path / "missing.py")
    with pytest.raises(UserError, match=r"submission\.py:3: .*syntax error"):
        sc.check_submission(write(tmp_path, CLEAN.replace("import os", "import os\ndef (:")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no submission_<framework>.py or submission.py"):
        sc.check_submission(tmp_path / "empty")


# --- the command ----------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "algoperf", "check", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_command_prints_one_line_per_finding_and_exits_1_0_or_2(tmp_path):
    _, where, code = BAD["patches_time"]
    text = splice(where, code)
    bad = run_cli(str(write(tmp_path, text)))
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.splitlines() == [
        f"{tmp_path / 'sub' / 'submission.py'}:{marked_line(text)}: clock: assigns to an "
        "attribute of the time module, the clock the runner times submissions with"]
    relative = run_cli("sub", cwd=tmp_path)  # a folder given relatively: the same finding
    assert (relative.returncode, relative.stdout) == (1, bad.stdout)
    clean = run_cli(str(ROOT / "submissions" / "nadamw"))
    assert (clean.returncode, clean.stdout) == (0, ""), clean.stderr
    missing = run_cli(str(tmp_path / "nowhere.py"))
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and missing.stderr.startswith("error: submission")


# --- the reference submissions and AlgoPerf's own -------------------------------------------


def reference_submissions() -> list[tuple[Path, str]]:
    folders = [p for p in sorted((ROOT / "submissions").iterdir()) if p.is_dir()
               and not p.name.startswith("_")]
    folders.append(ROOT / "docs" / "templates" / "sgd")
    return [(f, "external" if (f / "tuning_search_space.json").is_file() else "self")
            for f in folders]


@pytest.mark.parametrize(("folder", "ruleset"), reference_submissions(),
                         ids=lambda v: v.name if isinstance(v, Path) else v)
def test_reference_submissions_pass(folder, ruleset):
    assert [str(f) for f in sc.check_submission(folder, ruleset=ruleset)] == []


def export(repo: str | None, variable: str, paths: list[str], into: Path) -> Path:
    """The ``paths`` of ``repo`` (a checkout, or a bare repository exported with git
    archive) as files under ``into``; skips when ``variable`` names no copy."""
    if not repo or not Path(repo).exists():
        pytest.skip(f"no copy of the repository (set {variable} to a checkout or bare "
                    "repository to run this test)")
    repo = Path(repo)
    if (repo / paths[0].split("/")[0]).exists():
        return repo
    into.mkdir()
    archive = subprocess.run(["git", f"--git-dir={repo}", "archive", "HEAD", *paths],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def top_level_names(module: ast.Module) -> set[str]:
    names = {n.name for n in module.body if isinstance(n, ast.FunctionDef)}
    return names | {a.asname or a.name for n in module.body
                    if isinstance(n, ast.ImportFrom) for a in n.names}


def upstream_submissions(tree: Path, folders: list[str]) -> list[Path]:
    """Every Python file under ``folders`` that binds the required submission functions at its
    top level (defined or imported from helpers) and parses under this Python."""
    found = []
    for folder in folders:
        for file in sorted((tree / folder).rglob("*.py")):
            try:
                module = ast.parse(file.read_bytes())
            except SyntaxError:
                continue  # one published file is two files run together; nothing runs it
            if set(submission.REQUIRED) <= top_level_names(module):
                found.append(file)
    return found


def assert_all_pass(files: list[Path]) -> None:
    bad = {str(f): [str(x) for x in sc.violations(sc.check_submission(f))] for f in files}
    assert {f: v for f, v in bad.items() if v} == {}


def test_algoperfs_own_baselines_pass(tmp_path):
    folders = ["algorithms/baselines", "algorithms/archived_paper_baselines",
               "algorithms/development_algorithms", "algorithms/target_setting_algorithms",
               "algorithms/template"]
    tree = export(ALGOPERF_REPO, "ALGOPERF_REPO", folders, tmp_path / "ae")
    files = upstream_submissions(tree, folders)
    assert len(files) >= 25, files  # NAdamW, eight paper baselines x 2, dev, target setting
    assert_all_pass(files)


def test_published_leaderboard_submissions_pass(tmp_path):
    folders = ["previous_leaderboards/algoperf_v05/submissions",
               "previous_leaderboards/algoperf_v06/submissions", "submissions"]
    tree = export(SUBMISSIONS_REPO, "ALGOPERF_SUBMISSIONS_REPO", folders, tmp_path / "sa")
    files = upstream_submissions(tree, folders)
    assert len(files) >= 30, files
    assert_all_pass(files)


# --- wiring: docker run and sweep plan refuse before any job --------------------------------


def bad_submission_folder(tmp_path: Path) -> Path:
    _, where, code = BAD["sets_environment"]
    return write(tmp_path, splice(where, code), "submission_pytorch.py").parent


def test_sweep_plan_refuses_a_bad_submission_and_no_check_plans_it(tmp_path):
    from algoperf.cli import cli

    folder = bad_submission_folder(tmp_path)
    args = ["sweep", "plan", "--submission", str(folder), "--workloads", "digits",
            "--num-studies", "1", "--num-tuning-trials", "1", "--seed", "0"]
    refused = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a")])
    assert isinstance(refused.exception, UserError)
    assert "environment" in str(refused.exception) and "--no-check" in str(refused.exception)
    assert not (tmp_path / "a" / "plan.json").exists()
    planned = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b"), "--no-check"])
    assert planned.exit_code == 0, planned.output
    assert (tmp_path / "b" / "plan.json").is_file()


def test_docker_run_refuses_a_bad_submission_before_asking_the_engine(tmp_path):
    # The check runs before the engine is asked: on a machine without one the error is
    # still the check's.
    from algoperf.containers import docker_run

    folder = bad_submission_folder(tmp_path)
    options = {"submission_path": folder, "submission_root": None, "workload": "digits",
               "framework": "pytorch", "experiment_dir": tmp_path / "runs",
               "experiment_name": None, "data_dir": tmp_path / "data",
               "imagenet_v2_data_dir": None, "ruleset": "external",
               "tuning_search_space": folder / "tuning_search_space.json", "rules": "v0.6",
               "num_studies": 1, "study": None, "num_tuning_trials": 1,
               "hparam_start_index": None, "hparam_end_index": None, "seed": 0,
               "max_global_steps": None, "resume": False, "overwrite": False,
               "save_checkpoints": True, "save_intermediate_checkpoints": False,
               "reference": None, "allow_nonreference": False}
    with pytest.raises(UserError, match=r"submission_pytorch\.py:\d+: environment"):
        docker_run.docker_run(options, docker_run.DockerOptions(image="algoperf:cpu"))
    assert not (tmp_path / "runs").exists()


def test_docker_run_and_sweep_plan_take_no_check():
    from algoperf.cli import cli

    for args in (["docker", "run", "--help"], ["sweep", "plan", "--help"]):
        assert "--no-check" in CliRunner().invoke(cli, args).output
