"""ogbg's JAX-to-PyTorch transfer for the parity harness: the jraph GNN -> AlgoPerf's PyTorch
``GNN``.

``node_embedding``/``edge_embedding`` -> ``node_embedder``/``edge_embedder``; the MLP layers
``Dense_<k>``/``LayerNorm_<k>``, numbered in creation order (step ``s``, update function
``f`` of edge, node, global, hidden layer ``i``: ``k = (3 s + f) * len(hidden_dims) + i``) ->
``graph_network.<s>.update_<f>_fn.dense_<i>``/``norm_<i>``; the last ``Dense`` -> ``decoder``.
The hidden widths are read off the parameter tree, so every variant maps with this one rule.

Tolerances are the defaults: the model has no batch norm, and its sums over a node's edges
and a graph's nodes (scatter-adds in PyTorch, ``segment_sum`` in XLA) run over a few dozen
terms.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf.workloads.common.parity import dense, layer_norm, prefixed

FUNCTIONS = ("edge", "node", "global")


def jax_to_pytorch(params: dict[str, Any], model_state: Any) -> dict[str, np.ndarray]:
    del model_state  # the model has none
    numbered = sorted((key for key in params if key.startswith("Dense_")),
                      key=lambda key: int(key.rsplit("_", 1)[1]))
    *mlp_layers, decoder = numbered
    state_dict = {**prefixed("node_embedder", dense(params["node_embedding"])),
                  **prefixed("edge_embedder", dense(params["edge_embedding"])),
                  **prefixed("decoder", dense(params[decoder]))}
    widths = _hidden_layers_per_function(params, len(mlp_layers))
    for k in range(len(mlp_layers)):
        block, layer = divmod(k, widths)
        step, function = divmod(block, len(FUNCTIONS))
        prefix = f"graph_network.{step}.update_{FUNCTIONS[function]}_fn"
        state_dict.update(prefixed(f"{prefix}.dense_{layer}", dense(params[f"Dense_{k}"])))
        state_dict.update(prefixed(f"{prefix}.norm_{layer}",
                                   layer_norm(params[f"LayerNorm_{k}"])))
    return state_dict


def _hidden_layers_per_function(params: dict[str, Any], num_layers: int) -> int:
    """The number of hidden layers of each MLP: the first MLP (step 0's edge update) reads
    the embedded edge, two nodes and the globals; each later layer of it reads its
    predecessor's output, so the MLP ends where a layer's input is that concatenation
    again (step 0's node update)."""
    first_input = params["Dense_0"]["kernel"].shape[0]
    layers = 1
    while layers < num_layers and params[f"Dense_{layers}"]["kernel"].shape[0] != first_input \
            and params[f"Dense_{layers}"]["kernel"].shape[0] == \
            params[f"Dense_{layers - 1}"]["kernel"].shape[1]:
        layers += 1
    return layers
