"""The ImageNet ViT workloads, framework-free part: ResNet's ImageNet with ViT's settings.

AlgoPerf's ``imagenet_vit`` shares ``imagenet_resnet``'s data, sizes, loss and metrics; it
evaluates at batch 2,048 (so ``eval_train`` is 51,200 images) and trains on RandAugment
(2 layers, magnitude 10) and mixup (alpha 0.2) batches. The model is ViT-S/16 (width 384,
depth 12, 6 heads, MLP 1,536, 16 x 16 patches); the variants switch on a GLU MLP, post-layer
norm or a multihead-attention-pooling head.
"""

from __future__ import annotations

from typing import ClassVar

from algoperf.workloads.imagenet_resnet.workload import BaseImagenetResNetWorkload

# ViT-S/16 (Table 2 of arXiv:2106.04560, as AlgoPerf's ``decode_variant('S/16')``).
VIT_S16 = {"width": 384, "depth": 12, "mlp_dim": 1536, "num_heads": 6, "patch_size": 16}
DROPOUT_RATE = 0.0  # AlgoPerf's default; a submission may pass another to model_fn


class BaseImagenetVitWorkload(BaseImagenetResNetWorkload):
    """ImageNet with ViT-S/16, framework-free: the JAX and PyTorch ``ImagenetVitWorkload``
    classes build on it."""

    workload_name = "imagenet_vit"
    variant_settings: ClassVar[tuple[str, ...]] = ("use_glu", "use_post_layer_norm",
                                                   "use_map")
    use_glu = False  # the MLP's hidden layer gated by a second dense layer
    use_post_layer_norm = False  # layer norm after each residual add, none after the encoder
    use_map = False  # multihead attention pooling instead of the mean over tokens
    use_randaug = True
    use_mixup = True

    @property
    def eval_batch_size(self) -> int:
        return 2048
