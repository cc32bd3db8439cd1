"""The sweep plan: every job of a study grid, with the hyperparameters and seed it trains with.

A job is one `algoperf run` restricted to one study and one trial (self-tuning: one study).
Its :class:`~algoperf.runner.RunConfig` is built once, by :func:`job_config`; the plan draws the
job's hyperparameters from that config with :func:`algoperf.tuning.plan_trials` and the job's
command line is written from the same config (:mod:`algoperf.sweep.launch`), so what the plan
lists is what the job trains with.

A plan depends only on its inputs (submission digest, search space, rules, ruleset, workloads,
studies, trials, master seed, step cap): the same inputs give the same ``plan_id`` and the same
jobs on any machine and at any time. ``plan.json`` is written once and never replaced by a
different plan; the installation that runs it must be the version that made it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from algoperf import __version__, runner, submission, tuning
from algoperf.errors import UserError
from algoperf.hashing import file_sha256
from algoperf.logs.atomic import write_atomic
from algoperf.workloads import registry

PLAN_FORMAT = "algoperf-sweep-plan/1"
PLAN_FILE = "plan.json"
SEARCH_SPACE_FILE = "tuning_search_space.json"  # AlgoPerf's name, beside the submission
DEFAULT_DATA_DIR = runner.RunConfig.data_dir  # "~/data", expanded where the job runs


@dataclasses.dataclass(frozen=True)
class Job:
    """One cell of the grid: a workload, a study and a trial, and what it trains with."""

    index: int
    workload: str
    study: int
    trial: int
    seed: int  # the trial seed the runner derives (logged in its run_start event)
    hyperparameters: dict[str, Any] | None  # None under self-tuning

    @property
    def name(self) -> str:
        return f"{self.workload}-study_{self.study}-trial_{self.trial}"

    @property
    def label(self) -> str:
        """The name job logs and records use: ``job_0007`` (a Slurm array's ``%4a``)."""
        return f"job_{self.index:04d}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """A planned sweep in ``directory``, which is also the submission's experiment directory:
    ``<directory>/study_<k>/<workload>_<framework>/trial_<i>/`` (AlgoPerf's layout)."""

    directory: Path
    submission: Path
    submission_sha256: str
    search_space: Path | None
    search_space_sha256: str | None
    framework: str
    rules: str
    ruleset: str
    workloads: tuple[str, ...]
    num_studies: int
    num_trials: int  # per study; 1 under self-tuning
    seed: int
    max_global_steps: int | None
    save_checkpoints: bool
    data_dir: Path | None  # None: each job's own default (~/data on the machine it runs on)
    jobs: tuple[Job, ...]
    algoperf_version: str = __version__
    submission_root: Path | None = None  # the repository root every job puts on sys.path

    @property
    def plan_id(self) -> str:
        """sha256 over everything that decides the results, paths excluded."""
        identity = {k: v for k, v in _inputs(self).items()
                    if k not in ("submission", "search_space", "data_dir", "submission_root")}
        identity["jobs"] = [dataclasses.asdict(j) for j in self.jobs]
        text = json.dumps([PLAN_FORMAT, identity], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def jobs_dir(self) -> Path:
        """Where the sweep keeps its own records: job logs, attempts, submissions."""
        return self.directory / "jobs"

    def trial_dir(self, job: Job) -> Path:
        return runner.workload_dir(job_config(self, job), job.study) / f"trial_{job.trial}"


def _inputs(plan: Plan) -> dict[str, Any]:
    return {
        "submission": str(plan.submission),
        "submission_sha256": plan.submission_sha256,
        "search_space": str(plan.search_space) if plan.search_space else None,
        "search_space_sha256": plan.search_space_sha256,
        "framework": plan.framework,
        "rules": plan.rules,
        "ruleset": plan.ruleset,
        "workloads": list(plan.workloads),
        "num_studies": plan.num_studies,
        "num_trials": plan.num_trials,
        "seed": plan.seed,
        "max_global_steps": plan.max_global_steps,
        "save_checkpoints": plan.save_checkpoints,
        "data_dir": str(plan.data_dir) if plan.data_dir else None,
        "submission_root": str(plan.submission_root) if plan.submission_root else None,
    }


def job_config(plan: Plan, job: Job) -> runner.RunConfig:
    """The `algoperf run` configuration of ``job``: its study, its trial's slice of the study's
    hyperparameter list, the plan's master seed, resuming whatever an earlier attempt left."""
    external = plan.ruleset == "external"
    return runner.RunConfig(
        submission_path=plan.submission,
        workload=job.workload,
        framework=plan.framework,
        experiment_dir=plan.directory.parent,
        experiment_name=plan.directory.name,
        data_dir=plan.data_dir or DEFAULT_DATA_DIR,
        ruleset=plan.ruleset,
        tuning_search_space=plan.search_space,
        rules=plan.rules,
        num_studies=plan.num_studies,
        study=job.study,
        num_tuning_trials=plan.num_trials if external else None,
        hparam_start_index=job.trial - 1 if external else None,
        hparam_end_index=job.trial if external else None,
        seed=plan.seed,
        max_global_steps=plan.max_global_steps,
        resume=True,
        save_checkpoints=plan.save_checkpoints,
        submission_root=plan.submission_root,
    )


def _framework_of(path: Path, framework: str | None) -> str:
    """``--framework``, or the one a submission file or folder names."""
    if framework is not None:
        return registry.check_framework(framework)
    candidates = [path.name] if path.is_file() else [p.name for p in sorted(path.glob("*.py"))]
    found = [fw for fw in registry.FRAMEWORKS if f"submission_{fw}.py" in candidates]
    if len(found) == 1:
        return found[0]
    raise UserError(f"cannot tell the framework of submission {path}; pass --framework "
                    f"{'|'.join(registry.FRAMEWORKS)}")


def make_plan(directory: Path, submission_path: Path, *, rules: str = registry.DEFAULT_RULES,
              ruleset: str = "external", framework: str | None = None,
              search_space: Path | None = None, workloads: tuple[str, ...] | None = None,
              num_studies: int | None = None, num_trials: int | None = None, seed: int = 0,
              max_global_steps: int | None = None, save_checkpoints: bool = True,
              data_dir: Path | None = None, submission_root: Path | None = None) -> Plan:
    """The plan of a study grid; unset sizes and workloads (base workloads and held-out
    variants) follow the rules version. The repository root (``submission_root``, else the
    current directory when it holds the submission) is recorded, so every job puts the same
    root on sys.path wherever it runs.

    Checks every input (one UserError line each) before anything is written.
    """
    r = registry.get_rules(rules)
    if ruleset not in ("external", "self"):
        raise UserError(f"unknown tuning ruleset {ruleset!r}; use 'external' or 'self'")
    path = Path(submission_path).expanduser()
    if not path.exists():
        raise UserError(f"submission {path} does not exist; pass a submission .py file or "
                        "its folder")
    framework = _framework_of(path, framework)
    file = submission.resolve_path(path, framework).resolve()
    root = submission.submission_root(file, submission_root)
    if ruleset == "external":
        if search_space is None:
            search_space = file.parent / SEARCH_SPACE_FILE
            if not search_space.is_file():
                raise UserError(f"no search space: {search_space} does not exist; pass "
                                "--search-space FILE (external tuning needs one)")
        search_space = Path(search_space).expanduser().resolve()
        tuning.load_search_space(search_space)  # validates; one line per problem
    elif search_space is not None:
        raise UserError("a self-tuning sweep takes no --search-space; drop it or use "
                        "--ruleset external")
    if ruleset == "self" and num_trials not in (None, 1):
        raise UserError("self-tuning has one trial per study; drop --trials")
    # The rules version's grid: its base workloads and (v0.5) its held-out variants.
    workloads = tuple(workloads) if workloads else (*r.base_workloads, *r.held_out_workloads)
    for name in workloads:
        registry.get_workload(name)
    if len(set(workloads)) != len(workloads):
        raise UserError(f"--workloads names a workload twice: {', '.join(workloads)}")
    num_studies = r.num_studies if num_studies is None else num_studies
    num_trials = 1 if ruleset == "self" else (r.num_trials if num_trials is None else num_trials)
    for option, value in (("--studies", num_studies), ("--trials", num_trials)):
        if value < 1:
            raise UserError(f"{option} must be at least 1, got {value}")
    if max_global_steps is not None and max_global_steps < 1:
        raise UserError("--max-global-steps must be at least 1")

    plan = Plan(
        directory=Path(directory).expanduser().resolve(), submission=file,
        submission_sha256=submission.source_digest(file), search_space=search_space,
        search_space_sha256=file_sha256(search_space) if search_space else None,
        framework=framework, rules=rules, ruleset=ruleset, workloads=workloads,
        num_studies=num_studies, num_trials=num_trials, seed=seed,
        max_global_steps=max_global_steps, save_checkpoints=save_checkpoints,
        data_dir=Path(data_dir).expanduser().resolve() if data_dir else None, jobs=(),
        submission_root=root)
    return dataclasses.replace(plan, jobs=tuple(_jobs(plan)))


def _jobs(plan: Plan) -> list[Job]:
    """Every job, workloads in order, then studies, then trials; hyperparameters exactly as the
    job's own `algoperf run` draws them."""
    jobs: list[Job] = []
    for workload in plan.workloads:
        for study in range(plan.num_studies):
            for trial in range(1, plan.num_trials + 1):
                draft = Job(len(jobs), workload, study, trial, 0, None)
                config = job_config(plan, draft)
                runner.validate(config)
                drawn = tuning.plan_trials(config, plan.seed)[study]
                if len(drawn) != 1:
                    raise UserError(f"the search space {plan.search_space} lists fewer than "
                                    f"{plan.num_trials} configurations; pass --trials "
                                    f"{trial - 1} or add configurations")
                ((_, hp),) = drawn
                jobs.append(dataclasses.replace(
                    draft, seed=tuning.trial_seed(plan.seed, workload, study, trial),
                    hyperparameters=hp._asdict() if hp is not None else None))
    return jobs


# --- plan.json ------------------------------------------------------------------------------


def to_json(plan: Plan) -> str:
    """The text of ``plan.json`` (stable: the same plan gives the same bytes)."""
    doc = {
        "format": PLAN_FORMAT,
        "algoperf_version": plan.algoperf_version,
        "plan_id": plan.plan_id,
        "inputs": _inputs(plan),
        "jobs": [{"label": j.label, "name": j.name, **dataclasses.asdict(j),
                  "trial_dir": str(plan.trial_dir(j).relative_to(plan.directory))}
                 for j in plan.jobs],
    }
    return json.dumps(doc, indent=1) + "\n"


def write_plan(plan: Plan) -> bool:
    """Writes ``plan.json``; False if the same plan is already there. A different plan, or
    results without a plan, in the directory is a UserError: nothing is overwritten."""
    path = plan.directory / PLAN_FILE
    if path.exists():
        existing = load_plan(plan.directory)
        if existing.plan_id == plan.plan_id and _inputs(existing) == _inputs(plan):
            return False
        raise UserError(f"{plan.directory} already holds a different plan ({PLAN_FILE}, id "
                        f"{existing.plan_id[:12]}); run it with `algoperf sweep run "
                        f"{plan.directory}` or plan into a new --out")
    if plan.directory.is_dir() and any(plan.directory.glob("study_*")):
        raise UserError(f"{plan.directory} already holds results but no {PLAN_FILE}; plan into "
                        "a new --out")
    plan.directory.mkdir(parents=True, exist_ok=True)
    write_atomic(path, to_json(plan))
    return True


def load_plan(directory: Path) -> Plan:
    """Reads ``<directory>/plan.json``, refusing a plan of another format or version."""
    directory = Path(directory).expanduser().resolve()
    path = directory / PLAN_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no sweep plan in {directory} ({PLAN_FILE} missing); make one with "
                        "`algoperf sweep plan ... --out DIR`") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable plan ({e}); plan again into a new "
                        "directory") from None
    if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
        raise UserError(f"{path} is not a sweep plan of format {PLAN_FORMAT}; plan again with "
                        "this algoperf into a new directory")
    made_by = doc.get("algoperf_version")
    if made_by != __version__:
        raise UserError(f"{path} was made by algoperf {made_by}, this is {__version__}; run it "
                        f"with algoperf {made_by} or plan again into a new directory")
    try:
        inputs = doc["inputs"]
        plan = Plan(
            directory=directory, submission=Path(inputs["submission"]),
            submission_sha256=inputs["submission_sha256"],
            search_space=Path(inputs["search_space"]) if inputs["search_space"] else None,
            search_space_sha256=inputs["search_space_sha256"], framework=inputs["framework"],
            rules=inputs["rules"], ruleset=inputs["ruleset"],
            workloads=tuple(inputs["workloads"]), num_studies=inputs["num_studies"],
            num_trials=inputs["num_trials"], seed=inputs["seed"],
            max_global_steps=inputs["max_global_steps"],
            save_checkpoints=inputs["save_checkpoints"],
            data_dir=Path(inputs["data_dir"]) if inputs["data_dir"] else None,
            jobs=tuple(Job(j["index"], j["workload"], j["study"], j["trial"], j["seed"],
                           j["hyperparameters"]) for j in doc["jobs"]),
            algoperf_version=made_by,
            submission_root=Path(inputs["submission_root"]) if inputs.get("submission_root")
            else None)
    except (KeyError, TypeError) as e:
        raise UserError(f"{path} is damaged (missing {e}); plan again into a new "
                        "directory") from None
    if plan.plan_id != doc.get("plan_id"):
        raise UserError(f"{path} was edited: its content does not match its plan_id; plan "
                        "again into a new directory")
    return plan


def check_inputs_unchanged(plan: Plan) -> None:
    """Refuses to run a plan whose submission or search space changed since it was made."""
    if not plan.submission.is_file():
        raise UserError(f"the planned submission {plan.submission} is gone; restore it or plan "
                        "again")
    if submission.source_digest(plan.submission) != plan.submission_sha256:
        raise UserError(f"submission {plan.submission.parent} changed since the plan was made; "
                        "restore it or plan again into a new directory")
    if plan.search_space is not None:
        if not plan.search_space.is_file():
            raise UserError(f"the planned search space {plan.search_space} is gone; restore "
                            "it or plan again")
        if file_sha256(plan.search_space) != plan.search_space_sha256:
            raise UserError(f"search space {plan.search_space} changed since the plan was made; "
                            "restore it or plan again into a new directory")
