"""Run records: the hash-chained event log (`events`) that verification trusts, and the
AlgoPerf per-trial files derived from the run (`measurements`, `trial_files`), with the
measurement-quality record of each trial (`quality`)."""

from algoperf.logs.events import EVENTS_FILENAME, EventLog, read_events, verify_chain
from algoperf.logs.measurements import (
    EVAL_MEASUREMENTS_FILENAME,
    MEASUREMENTS_FILENAME,
    MetricLogger,
    read_measurements,
)

__all__ = ["EVAL_MEASUREMENTS_FILENAME", "EVENTS_FILENAME", "MEASUREMENTS_FILENAME", "EventLog",
           "MetricLogger", "read_events", "read_measurements", "verify_chain"]
