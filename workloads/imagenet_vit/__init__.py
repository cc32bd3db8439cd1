"""ImageNet ViT-S/16 (AlgoPerf's imagenet_vit) and its variants."""
