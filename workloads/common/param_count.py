"""Parameter counts of a workload's model, built shape-only.

Counting must not cost what training costs: DLRM's 539 million parameters would take gigabytes
and tens of seconds to initialise. JAX traces ``init_model_fn`` with ``jax.eval_shape`` (shapes
and dtypes, no arrays); PyTorch builds the workload's module (``_build_model``, which every
PyTorch workload here defines and which moves nothing to a device) on the ``meta`` device,
where tensors have shapes but no storage.
"""

from __future__ import annotations

import math
from typing import Any

from algoperf import spec


def count_parameters(workload: spec.Workload, framework: str, rng: Any) -> int:
    """Trainable parameters of ``workload``'s model in ``framework``, without allocating them.

    ``rng`` is the model rng ``init_model_fn`` takes (a JAX key or its numpy emulation).
    """
    if framework == "jax":
        import jax

        params, _ = jax.eval_shape(workload.init_model_fn, rng)
        return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
    import torch

    with torch.device("meta"):
        model = workload._build_model()
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
