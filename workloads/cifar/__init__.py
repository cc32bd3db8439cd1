"""AlgoPerf's CIFAR-10 dev workload: ResNet-18 with batch norm."""
