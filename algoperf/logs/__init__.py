"""Run records: the hash-chained event log (`events`) that verification trusts, and the
AlgoPerf per-trial files derived from the run (`measurements`, `trial_files`)."""
