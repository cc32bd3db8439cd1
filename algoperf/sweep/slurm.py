"""The Slurm executor: a sweep's jobs as one job array, through Slurm's own command line.

``sbatch`` gets a batch script whose array task id is the plan's job index; each task records
its attempt (host, Slurm job id, exit code) in ``jobs/attempts/`` and appends its output to
``jobs/logs/job_<index>.log`` (``--open-mode=append``: a resumed job adds to its log).
Partition, GPUs per job, time limit and any other sbatch options pass straight through.
``squeue`` tells pending from running tasks; everything else comes from the trial logs, so a
cancelled or timed-out task shows as interrupted and `sweep resume` submits it again.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from algoperf.errors import UserError
from algoperf.submission import JOB_ENVIRONMENT
from algoperf.sweep.plan import Job, Plan

COMMAND_TIMEOUT_SEC = 60
RUNNING_STATES = {"RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
PENDING_STATES = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
                  "SUSPENDED", "STOPPED"}


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """What `sweep run --executor slurm` passes to sbatch."""

    partition: str | None = None
    gpus_per_job: int = 0
    time_limit: str | None = None  # Slurm's format: minutes, MM:SS, HH:MM:SS, D-HH, ...
    sbatch_options: tuple[str, ...] = ()  # more sbatch options, shell-style words
    slurm_conf: str | None = None  # SLURM_CONF for this cluster; default: Slurm's own


class Slurm:
    """Slurm's commands, pointed at one cluster (``slurm_conf``, else Slurm's default)."""

    def __init__(self, slurm_conf: str | None = None) -> None:
        self.env = dict(os.environ)
        if slurm_conf:
            path = Path(slurm_conf).expanduser()
            if not path.is_file():
                raise UserError(f"--slurm-conf {path} does not exist; pass your cluster's "
                                "slurm.conf")
            self.env["SLURM_CONF"] = str(path.resolve())
        elif self.env.get("SLURM_CONF") and not Path(self.env["SLURM_CONF"]).is_file():
            raise UserError(f"SLURM_CONF={self.env['SLURM_CONF']} does not exist; point it (or "
                            "--slurm-conf) at your cluster's slurm.conf")

    def _run(self, args: Sequence[str]) -> subprocess.CompletedProcess:
        if shutil.which(args[0], path=self.env.get("PATH")) is None:
            raise UserError(f"Slurm's `{args[0]}` is not installed here: run the sweep on a "
                            "machine with your cluster's Slurm commands (Debian: apt-get "
                            "install slurm-client, with --slurm-conf pointing at its "
                            "slurm.conf), or use --executor local")
        try:
            return subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_SEC, check=False)
        except subprocess.TimeoutExpired:
            raise UserError(f"`{args[0]}` got no answer from the Slurm controller in "
                            f"{COMMAND_TIMEOUT_SEC}s; check the cluster, or point at another "
                            "with --slurm-conf PATH") from None

    def partitions(self) -> list[str]:
        """The cluster's partitions; a UserError saying how to reach a cluster if none answers."""
        done = self._run(["sinfo", "-h", "-o", "%R"])
        if done.returncode != 0:
            raise UserError(f"no Slurm controller answers ({_last_line(done.stderr)}); start "
                            "it (a one-node cluster: .ci/slurm-up), or point at your cluster "
                            "with --slurm-conf PATH or SLURM_CONF")
        return sorted({line.strip() for line in done.stdout.splitlines() if line.strip()})

    def check_partition(self, partition: str | None) -> None:
        known = self.partitions()
        if partition is not None and partition not in known:
            raise UserError(f"unknown Slurm partition {partition!r}; this cluster has "
                            f"{', '.join(known) or 'none'}")

    def submit(self, script: Path, options: Sequence[str]) -> str:
        """Submits ``script`` with ``options``; returns the (array) job id."""
        done = self._run(["sbatch", "--parsable", *options, str(script)])
        if done.returncode != 0:
            raise UserError(f"sbatch refused the job array: {_last_line(done.stderr)}")
        return done.stdout.strip().split(";")[0]

    def queue(self, job_name: str, array_ids: Iterable[str]) -> dict[int, str] | None:
        """Task index -> "pending"/"running" for the tasks of ``array_ids`` still in the queue;
        None if the controller does not answer."""
        ids = set(array_ids)
        if not ids:
            return {}
        try:
            done = self._run(["squeue", "-h", "-r", "--name", job_name, "-o", "%F|%K|%T"])
        except UserError:
            return None
        if done.returncode != 0:
            return None
        states: dict[int, str] = {}
        for line in done.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 3 or parts[0] not in ids or not parts[1].isdigit():
                continue
            if parts[2] in RUNNING_STATES:
                states[int(parts[1])] = "running"
            elif parts[2] in PENDING_STATES:
                states[int(parts[1])] = "pending"
        return states


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def job_name(plan: Plan) -> str:
    """The array's name: one per plan, so squeue can find its tasks."""
    return f"algoperf-sweep-{plan.plan_id[:12]}"


def array_spec(indices: Iterable[int], parallel: int | None = None) -> str:
    """``0-3,5,7-9`` (with ``%N`` when at most N tasks may run at once)."""
    ranges: list[list[int]] = []
    for i in sorted(set(indices)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    spec = ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in ranges)
    return spec + (f"%{parallel}" if parallel else "")


def sbatch_options(plan: Plan, indices: Iterable[int], options: SlurmOptions,
                   parallel: int | None = None) -> list[str]:
    """The sbatch command-line options of one submission; at most ``parallel`` tasks run at
    once."""
    args = [
        f"--job-name={job_name(plan)}",
        f"--array={array_spec(indices, parallel)}",
        f"--output={plan.jobs_dir / 'logs' / 'job_%4a.log'}",
        "--open-mode=append",
        f"--chdir={plan.directory}",
    ]
    if options.partition:
        args.append(f"--partition={options.partition}")
    if options.gpus_per_job:
        args.append(f"--gres=gpu:{options.gpus_per_job}")
    if options.time_limit:
        args.append(f"--time={options.time_limit}")
    for text in options.sbatch_options:
        try:
            args += shlex.split(text)
        except ValueError as e:
            raise UserError(f"--sbatch-option {text!r} cannot be split into words ({e}); fix "
                            "its quoting") from None
    return args


def batch_script(plan: Plan, commands: Sequence[tuple[Job, list[str]]]) -> str:
    """The batch script: a table from array task id to the job's command, wrapped in the
    attempt records."""
    attempts = shlex.quote(str(plan.jobs_dir / "attempts"))
    cases = "\n".join(f"  {job.index}) label={job.label}; command=({shlex.join(cmd)}) ;;"
                      for job, cmd in commands)
    env = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in JOB_ENVIRONMENT.items())
    return f"""#!/bin/bash
# algoperf sweep of {plan.directory} (plan {plan.plan_id[:12]}): array task id = job index.
set -u
{env}
case "$SLURM_ARRAY_TASK_ID" in
{cases}
  *) echo "algoperf sweep: no job $SLURM_ARRAY_TASK_ID in this script" >&2; exit 2 ;;
esac
mkdir -p {attempts}
record={attempts}/$label.jsonl
printf '{{"event":"start","t":%s,"host":"%s","pid":%d,"executor":"slurm","slurm_job":"%s"}}\\n' \\
  "$(date +%s.%N)" "$(hostname)" "$$" "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}" >>"$record"
echo "=== algoperf sweep: $label on $(hostname) at $(date -Is)" \\
  "(slurm ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}})"
echo "=== ${{command[*]}}"
"${{command[@]}}"
code=$?
printf '{{"event":"end","t":%s,"exit_code":%d}}\\n' "$(date +%s.%N)" "$code" >>"$record"
exit "$code"
"""


def write_script(plan: Plan, commands: Sequence[tuple[Job, list[str]]]) -> Path:
    """Writes the next ``jobs/slurm/submit_<n>.sbatch`` (earlier ones stay as the record)."""
    folder = plan.jobs_dir / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    (plan.jobs_dir / "logs").mkdir(parents=True, exist_ok=True)
    n = len(list(folder.glob("submit_*.sbatch")))
    while (path := folder / f"submit_{n}.sbatch").exists():
        n += 1
    path.write_text(batch_script(plan, commands))
    path.chmod(0o755)
    return path
