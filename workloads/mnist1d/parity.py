"""mnist1d's JAX-to-PyTorch transfer for the parity harness: ``Conv_<i>`` -> ``convs.<i>``
(kernel (width, in, out) -> weight (out, in, width)), ``Dense_0`` -> ``fc`` (both flatten
position-major, so the kernel only transposes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf.workloads.common.parity import conv, dense, prefixed


def jax_to_pytorch(params: dict[str, Any], model_state: Any = None) -> dict[str, np.ndarray]:
    del model_state  # the CNN has none
    convs = sorted((key for key in params if key.startswith("Conv_")),
                   key=lambda key: int(key.split("_")[1]))
    state_dict = prefixed("fc", dense(params["Dense_0"]))
    for index, key in enumerate(convs):
        state_dict.update(prefixed(f"convs.{index}", conv(params[key])))
    return state_dict
