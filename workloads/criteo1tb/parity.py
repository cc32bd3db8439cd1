"""criteo1tb's JAX-to-PyTorch transfer for the parity harness: the flax DLRM -> AlgoPerf's
PyTorch ``DlrmSmall`` / ``DLRMResNet``.

``embedding_table`` (V, D) -> its four row chunks ``embedding_chunk_0`` ... ``_3``. The
``Dense_<k>`` are the bottom MLP's, then the top MLP's: the top starts at the first layer
whose input is not its predecessor's output. DLRM-small: bottom layer ``i`` ->
``bot_mlp.<s i>``, top layer ``j`` -> ``top_mlp.<s j>``, the last one ``top_mlp.<s j + 1>``
(after the dropout), with stride ``s`` 2 (Linear, ReLU) or 3 with LayerNorm, whose
``LayerNorm_<i>`` follow each layer (``<s i + 2>``) and ``LayerNorm_<nb>`` is ``embed_ln``.
The residual model (its top reads the bottom output and the 26 embeddings side by side):
``bot_mlp.<i>.module.0`` and ``top_mlp.<j>.module.0``.

Tolerances are the defaults: float32 matrix products of at most 3,584 terms, no
normalisation by batch statistics. ``criteo1tb_embed_init`` trains at a smaller rate: its
table starts uniform on [0, 1) (not [0, 1 / 2048)), so the 378 dot products of 128-vectors
start near 40, the logits near -14, and plain SGD at 0.05 diverges within two steps (loss
3e6, the frameworks' rounding then amplified to 1e-1 in the parameters).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf.workloads.common.parity import dense, layer_norm, prefixed
from algoperf.workloads.criteo1tb.criteo1tb_pytorch.models import NUM_CHUNKS, NUM_SPARSE_FEATURES

LEARNING_RATES = {"criteo1tb_embed_init": 1e-3}


def jax_to_pytorch(params: dict[str, Any], model_state: Any) -> dict[str, np.ndarray]:
    del model_state  # the model has none
    table = np.asarray(params["embedding_table"])
    state_dict = {f"embedding_chunk_{i}": np.ascontiguousarray(chunk)
                  for i, chunk in enumerate(np.split(table, NUM_CHUNKS))}
    layers = sorted((key for key in params if key.startswith("Dense_")),
                    key=lambda key: int(key.rsplit("_", 1)[1]))
    widths = [params[key]["kernel"].shape for key in layers]
    num_bottom = next(k for k in range(1, len(layers)) if widths[k][0] != widths[k - 1][1])
    bottom, top = layers[:num_bottom], layers[num_bottom:]
    residual = widths[num_bottom][0] == widths[num_bottom - 1][1] + \
        NUM_SPARSE_FEATURES * table.shape[1]
    if residual:
        for i, key in enumerate(bottom):
            state_dict.update(prefixed(f"bot_mlp.{i}.module.0", dense(params[key])))
        for j, key in enumerate(top):
            state_dict.update(prefixed(f"top_mlp.{j}.module.0", dense(params[key])))
        return state_dict
    norms = "LayerNorm_0" in params
    stride = 3 if norms else 2
    for i, key in enumerate(bottom):
        state_dict.update(prefixed(f"bot_mlp.{stride * i}", dense(params[key])))
        if norms:
            state_dict.update(prefixed(f"bot_mlp.{stride * i + 2}",
                                       layer_norm(params[f"LayerNorm_{i}"])))
    if norms:
        state_dict.update(prefixed("embed_ln", layer_norm(params[f"LayerNorm_{num_bottom}"])))
    for j, key in enumerate(top):
        last = j == len(top) - 1
        state_dict.update(prefixed(f"top_mlp.{stride * j + last}", dense(params[key])))
        if norms and not last:
            state_dict.update(prefixed(f"top_mlp.{stride * j + 2}",
                                       layer_norm(params[f"LayerNorm_{num_bottom + 1 + j}"])))
    return state_dict
