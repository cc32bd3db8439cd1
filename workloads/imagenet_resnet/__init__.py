"""ImageNet ResNet-50 (AlgoPerf's imagenet_resnet) and its variants."""
