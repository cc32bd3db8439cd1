"""The ImageNet workloads, framework-free part: sizes, constants, the eval protocol, the data.

AlgoPerf's ``imagenet_resnet`` (and, through ``imagenet_vit.workload``, ``imagenet_vit``):
1,000 classes; 1,281,167 training images; ``eval_train`` is the validation size rounded up to
whole eval batches (50,176 at ResNet's eval batch of 1,024); validation is ILSVRC2012's 50,000
images and test ImageNet-v2's 10,000 (matched frequency). Images are 224 x 224 x 3 float32,
normalised with the ImageNet mean and standard deviation (AlgoPerf's ``train_mean`` and
``train_stddev``, on the 0-255 scale); random-resized crops (area 0.08-1, aspect 3/4-4/3) and
flips for training, resize to 256 and centre crop 224 for evaluation. Loss: softmax
cross-entropy, label smoothing 0.0 unless the submission asks (AlgoPerf's baselines pass
0.1); metrics ``accuracy`` and ``loss``. Targets and budgets are in the registry rows.

The batches come from the dataset's input pipeline (``imagenet_resnet.input_pipeline``,
reading ``algoperf.datasets.imagenet``'s prepared layout), imported when the first queue is
built: numpy dicts ``{'inputs': float32 (N, H, W, 3), 'targets': int (N,) or, with mixup,
float32 (N, 1000), 'weights': float32 (N,)}`` (weights on padded eval batches), which the
framework halves turn into their tensors (NHWC in JAX, NCHW in PyTorch). Split sizes follow
the prepared data, as cifar's do: the official counts for the official dataset, the smaller
ones of a synthetic set (``algoperf workloads check``, the tests).

``center_crop_size`` and ``resize_size`` are the eval crop and the resize before it (224 and
256; the training crop is ``center_crop_size`` too). Both models take any square input at
least 32 pixels wide without changing a parameter, so the CPU test suites build the workloads
with ``reduced_settings`` (64 x 64 crops), which cut a ResNet-50 step twelvefold.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from types import ModuleType
from typing import Any, ClassVar

from algoperf import spec
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification import ImageClassificationWorkload

NUM_CLASSES = 1000
# AlgoPerf's sizes: ILSVRC2012 train and validation, ImageNet-v2 matched-frequency test.
OFFICIAL_COUNTS = {"train": 1_281_167, "validation": 50_000, "test": 10_000}
MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV = (0.229 * 255, 0.224 * 255, 0.225 * 255)
PIPELINE_MODULE = "algoperf.workloads.imagenet_resnet.input_pipeline"
PREPARE_HINT = ("ImageNet must be prepared first: download ILSVRC2012_img_train.tar and "
                "ILSVRC2012_img_val.tar from image-net.org, run `algoperf datasets prepare "
                "imagenet`, and pass that --data-dir")


def input_pipeline() -> ModuleType:
    """The ImageNet input pipeline module; UserError when this installation has none."""
    try:
        return importlib.import_module(PIPELINE_MODULE)
    except ModuleNotFoundError as error:
        if error.name is None or not PIPELINE_MODULE.startswith(error.name):
            raise
        raise UserError(f"no ImageNet input pipeline ({PIPELINE_MODULE}) in this "
                        f"installation; {PREPARE_HINT}") from None


class BaseImagenetResNetWorkload(ImageClassificationWorkload):
    """ImageNet with ResNet-50, framework-free: the JAX and PyTorch ``ImagenetResNetWorkload``
    classes build on it (and the ViT workloads on those)."""

    workload_name = "imagenet_resnet"
    num_classes = NUM_CLASSES
    variant_settings: ClassVar[tuple[str, ...]] = ("use_silu", "use_gelu", "bn_init_scale")
    use_silu = False  # every ReLU a SiLU
    use_gelu = False  # every ReLU a GELU (tanh approximation, both frameworks)
    bn_init_scale = 0.0  # initial scale of each residual branch's last batch norm
    center_crop_size = 224
    resize_size = 256
    scale_ratio_range = (0.08, 1.0)
    aspect_ratio_range = (0.75, 4.0 / 3.0)
    use_randaug = False  # ViT's training pipeline adds RandAugment and mixup
    use_mixup = False
    # Smaller crops for the CPU test suites (see the module docstring); no parameter changes.
    reduced_settings: ClassVar[dict[str, Any]] = {"center_crop_size": 64, "resize_size": 73}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.use_silu and self.use_gelu:
            raise ValueError("imagenet_resnet: use_silu and use_gelu exclude each other")
        self._data_dir: str | None = None
        self._counts: dict[str, int] = {}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.center_crop_size, self.center_crop_size, 3)

    # Sizes.

    def _split_size(self, split: str) -> int:
        """Examples of ``split`` in the prepared data read so far (official before any)."""
        if self._data_dir is None:
            return OFFICIAL_COUNTS[split]
        if split not in self._counts:
            self._counts[split] = int(input_pipeline().num_examples(self._data_dir, split))
        return self._counts[split]

    @property
    def num_eval_train_examples(self) -> int:
        rounded = math.ceil(self.num_validation_examples / self.eval_batch_size)
        return min(rounded * self.eval_batch_size, self.num_train_examples)

    @property
    def eval_batch_size(self) -> int:
        return 1024

    @property
    def train_mean(self) -> tuple[float, float, float]:
        return MEAN

    @property
    def train_stddev(self) -> tuple[float, float, float]:
        return STDDEV

    # Data.

    def _use_data_dir(self, data_dir: str | None) -> None:
        if not data_dir:
            raise UserError(f"{self.workload_name}: no data dir; {PREPARE_HINT}")
        if data_dir != self._data_dir:
            self._data_dir, self._counts = data_dir, {}

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, Any]:
        raise NotImplementedError("ImageNet is streamed by its input pipeline, not held in "
                                  "memory")

    def _build_input_queue(
        self,
        data_rng: spec.RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: bool | None = None,
        repeat_final_dataset: bool | None = None,
        num_batches: int | None = None,
    ) -> Iterator[dict[str, spec.Tensor]]:
        """The pipeline's batches of ``split`` as the framework's tensors: seeded, augmented
        training batches (RandAugment and mixup where the workload uses them); ordered eval
        batches padded with ``weights``, repeated unless ``repeat_final_dataset`` is False."""
        del cache  # the pipeline decides what it keeps in memory
        if split != "test" or not self._data_dir:  # ImageNet-v2 may sit elsewhere
            self._use_data_dir(data_dir)
        train = split == "train"
        stream = input_pipeline().batches(
            data_dir, split, global_batch_size,
            seed=pipeline.seed_from_rng(data_rng) if data_rng is not None else 0,
            repeat=repeat_final_dataset is None or repeat_final_dataset,
            num_batches=num_batches,
            num_examples=self.num_eval_train_examples if split == "eval_train" else None,
            image_size=self.center_crop_size, resize_size=self.resize_size,
            scale_range=self.scale_ratio_range, aspect_range=self.aspect_ratio_range,
            mean=self.train_mean, stddev=self.train_stddev,
            use_randaug=train and self.use_randaug, use_mixup=train and self.use_mixup)
        return map(self._to_framework_batch, stream)

    def _read_split_sizes(self, data_dir: str | None) -> None:
        """Reads what the split sizes follow: the prepared data's index of each split."""
        self._use_data_dir(data_dir)
