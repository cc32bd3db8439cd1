"""ogbg's graph network in flax linen on jraph: AlgoPerf's ``GNN`` (from init2winit).

Node features (9) and edge features (3) are embedded by ``Dense`` layers named
``node_embedding`` and ``edge_embedding`` to ``latent_dim``; the globals start as zeros of
width 128. Each of ``num_message_passing_steps`` steps is a ``jraph.GraphNetwork`` with its own
edge, node and global update MLPs, each ``[Dense -> LayerNorm -> activation -> Dropout]`` per
hidden width on its concatenated inputs (``jraph.concatenated_args``); a last ``Dense`` maps
the globals to the 128 logits. The layers are created in call order, so the parameter tree is
AlgoPerf's: ``Dense_<i>``/``LayerNorm_<i>`` (edge, node, global MLP of each step in turn),
the decoder last.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import jraph
from flax import linen as nn

from algoperf.workloads.common.dropout_jax import Dropout

ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu}


def _mlp(hidden_dims: tuple[int, ...], activation: Callable, train: bool,
         dropout_rate: float | jnp.ndarray) -> Callable:
    @jraph.concatenated_args
    def apply(x):
        for width in hidden_dims:
            x = nn.Dense(width)(x)
            x = nn.LayerNorm()(x)
            x = activation(x)
            x = Dropout()(x, dropout_rate, deterministic=not train)
        return x

    return apply


class GNN(nn.Module):
    """The graph network; returns the logits of every graph (padding graphs included)."""

    num_outputs: int
    latent_dim: int = 256
    hidden_dims: tuple[int, ...] = (256,)
    num_message_passing_steps: int = 5
    activation_fn_name: str = "relu"

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple, train: bool,
                 dropout_rate: float | jnp.ndarray = 0.1) -> jnp.ndarray:
        if self.activation_fn_name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation_fn_name!r}; one of "
                             f"{', '.join(ACTIVATIONS)}")
        activation = ACTIVATIONS[self.activation_fn_name]
        graph = graph._replace(globals=jnp.zeros([graph.n_node.shape[0], self.num_outputs]))
        graph = jraph.GraphMapFeatures(
            embed_node_fn=nn.Dense(self.latent_dim, name="node_embedding"),
            embed_edge_fn=nn.Dense(self.latent_dim, name="edge_embedding"))(graph)
        for _ in range(self.num_message_passing_steps):
            graph = jraph.GraphNetwork(
                update_edge_fn=_mlp(self.hidden_dims, activation, train, dropout_rate),
                update_node_fn=_mlp(self.hidden_dims, activation, train, dropout_rate),
                update_global_fn=_mlp(self.hidden_dims, activation, train, dropout_rate),
            )(graph)
        graph = jraph.GraphMapFeatures(embed_global_fn=nn.Dense(self.num_outputs))(graph)
        return graph.globals
