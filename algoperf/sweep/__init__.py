"""`algoperf sweep`: the whole study grid (workloads x studies x trials), locally or on Slurm.

A sweep directory is one submission's experiment directory in AlgoPerf's layout, plus the plan
and the sweep's own records::

    <sweep>/plan.json                                   every job, its hyperparameters and seed
    <sweep>/study_<k>/<workload>_<framework>/trial_<i>/ the runs (`algoperf score <sweep>`)
    <sweep>/jobs/                                       job logs, attempts, launches

Python API::

    from algoperf.sweep import make_plan, write_plan, load_plan, launch, ExecOptions
    plan = make_plan(Path("sweeps/nadamw"), Path("submissions/nadamw/submission_jax.py"),
                     workloads=("digits",), num_studies=2, num_trials=2)
    write_plan(plan)
    launch(plan, plan.jobs, ExecOptions(executor="local", runtime="host", parallel=2), "run")
    statuses, warning = job_statuses(plan)      # state.JobStatus per job

See docs/sweep.md.
"""

from algoperf.sweep.execute import ExecOptions, job_statuses, jobs_to_resume, launch
from algoperf.sweep.plan import Job, Plan, job_config, load_plan, make_plan, write_plan
from algoperf.sweep.slurm import SlurmOptions
from algoperf.sweep.state import JobStatus, completeness

__all__ = ["ExecOptions", "Job", "JobStatus", "Plan", "SlurmOptions", "completeness",
           "job_config", "job_statuses", "jobs_to_resume", "launch", "load_plan", "make_plan",
           "write_plan"]
