"""charlm's JAX-to-PyTorch transfer for the parity harness: ``embed`` -> ``embed``,
``position`` as is, ``block_<i>`` -> ``blocks.<i>`` (LayerNorm scale/bias -> weight/bias,
Dense kernels transposed), ``ln_final`` and ``head`` by name."""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf.workloads.common.parity import dense, embedding, layer_norm, prefixed

_BLOCK_DENSE = ("attention.query", "attention.key", "attention.value", "attention.out",
                "mlp_in", "mlp_out")


def jax_to_pytorch(params: dict[str, Any], model_state: Any = None) -> dict[str, np.ndarray]:
    del model_state  # the Transformer has none
    state_dict = {**prefixed("embed", embedding(params["embed"])),
                  "position": np.asarray(params["position"]),
                  **prefixed("ln_final", layer_norm(params["ln_final"])),
                  **prefixed("head", dense(params["head"]))}
    blocks = sorted((key for key in params if key.startswith("block_")),
                    key=lambda key: int(key.split("_")[1]))
    for index, key in enumerate(blocks):
        block = params[key]
        for norm in ("ln_1", "ln_2"):
            state_dict.update(prefixed(f"blocks.{index}.{norm}", layer_norm(block[norm])))
        for path in _BLOCK_DENSE:
            layer = block
            for part in path.split("."):
                layer = layer[part]
            state_dict.update(prefixed(f"blocks.{index}.{path}", dense(layer)))
    return state_dict
