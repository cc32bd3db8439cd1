"""criteo1tb: DLRM-small on the Criteo 1TB click logs (AlgoPerf's ``criteo1tb`` and variants)."""
