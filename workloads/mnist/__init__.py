"""AlgoPerf's MNIST dev workload: the official IDX files, an MLP."""
