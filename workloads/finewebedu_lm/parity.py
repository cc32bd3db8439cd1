"""finewebedu_lm's JAX-to-PyTorch transfer for the parity harness.

``embed/embedding`` -> ``embed_tokens.weight`` (the tied output too); per block ``i``:
``query``/``key``/``value`` kernels (1024, 8, 128), flattened to (1024, 1024) head-major as
PyTorch's ``view(B, T, 8, 128)`` splits them, stacked as ``attn.w_qkv.weight`` (3072, 1024);
``attn_out_proj`` -> ``attn.w_out``; ``attn_scale`` as is; ``Mlp_0/Dense_0``/``Dense_1`` ->
``mlp.fc1``/``mlp.fc2``; ``RMSNorm_0``/``RMSNorm_1`` scales -> ``attn_norm``/``mlp_norm``
weights; ``out_ln`` -> ``out_norm``.

Tolerances are the defaults: at init the logits of the two frameworks differ by at most
4e-6 (the logits are about 0.3; 12 blocks of 1,024- to 4,096-term sums, then a 1,024-term
product with the embedding), within 1e-5 + 1e-5 |x|.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf.workloads.common.parity import dense, embedding, prefixed


def jax_to_pytorch(params: dict[str, Any], model_state: Any = None) -> dict[str, np.ndarray]:
    del model_state  # the model has none
    state_dict = {**prefixed("embed_tokens", embedding(params["embed"])),
                  "out_norm.weight": np.asarray(params["out_ln"]["scale"])}
    blocks = sorted((key for key in params if key.startswith("blocks_")),
                    key=lambda key: int(key.rsplit("_", 1)[1]))
    for key in blocks:
        block, prefix = params[key], f"layers.{key.rsplit('_', 1)[1]}"
        attention = block["CausalAttn_0"]
        qkv = [np.asarray(attention[name]["kernel"]).reshape(
            attention[name]["kernel"].shape[0], -1) for name in ("query", "key", "value")]
        state_dict[f"{prefix}.attn.w_qkv.weight"] = np.concatenate(qkv, axis=1).T
        state_dict.update(prefixed(f"{prefix}.attn.w_out", dense(attention["attn_out_proj"])))
        state_dict[f"{prefix}.attn.attn_scale"] = np.asarray(attention["attn_scale"])
        state_dict.update(prefixed(f"{prefix}.mlp.fc1", dense(block["Mlp_0"]["Dense_0"])))
        state_dict.update(prefixed(f"{prefix}.mlp.fc2", dense(block["Mlp_0"]["Dense_1"])))
        state_dict[f"{prefix}.attn_norm.weight"] = np.asarray(block["RMSNorm_0"]["scale"])
        state_dict[f"{prefix}.mlp_norm.weight"] = np.asarray(block["RMSNorm_1"]["scale"])
    return state_dict
