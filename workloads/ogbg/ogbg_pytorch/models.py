"""ogbg's graph network in PyTorch: AlgoPerf's ``GNN``, the computation of jraph's
``GraphNetwork`` written out.

Written plainly rather than on a graph library: PyTorch Geometric's ``MetaLayer`` is the only
well-kept layer of this shape (edge, node and global updates), and it only calls the three
update modules it is given -- the gathers, the per-node and per-graph sums, the broadcasts of
the globals and the concatenations in jraph's order are still the caller's to write, and they
are one ``index_add_`` or ``repeat_interleave`` each in PyTorch itself. Its message-passing
layers (``GCNConv``, ``GINEConv``, ...) compute other functions. So the step below is jraph's:

- edges <- MLP([edge, sender node, receiver node, its graph's global]);
- nodes <- MLP([node, sum of its outgoing edges, sum of its incoming edges, global]);
- globals <- MLP([sum of the graph's nodes, sum of its edges, global]).

The MLPs are ``[Linear -> LayerNorm(eps 1e-6) -> activation -> dropout]`` per hidden width,
initialised as flax's defaults. Module names are AlgoPerf's: ``node_embedder``,
``edge_embedder``, ``graph_network.<step>.update_{edge,node,global}_fn.{dense,norm}_<i>``,
``decoder``. GELU is the tanh approximation, flax's default.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from algoperf.pytorch_utils import CustomDropout, SequentialWithDropout
from algoperf.workloads.common.pytorch_init import pytorch_default_init

ACTIVATIONS = {"relu": nn.ReLU, "gelu": functools.partial(nn.GELU, approximate="tanh"),
               "silu": nn.SiLU}
NODE_FEATURES, EDGE_FEATURES = 9, 3


def _mlp(in_features: int, hidden_dims: tuple[int, ...], activation: Any) -> nn.Module:
    layers = SequentialWithDropout()
    for index, width in enumerate(hidden_dims):
        layers.add_module(f"dense_{index}", nn.Linear(in_features, width))
        layers.add_module(f"norm_{index}", nn.LayerNorm(width, eps=1e-6))
        layers.add_module(f"activation_fn_{index}", activation())
        layers.add_module(f"dropout_{index}", CustomDropout())
        in_features = width
    return layers


def _segment_sum(values: torch.Tensor, segments: torch.Tensor, count: int) -> torch.Tensor:
    out = torch.zeros((count, values.shape[1]), dtype=values.dtype, device=values.device)
    return out.index_add_(0, segments, values)


class GraphNetwork(nn.Module):
    """One message-passing step: jraph's ``GraphNetwork`` with sum aggregation."""

    def __init__(self, update_edge_fn: nn.Module, update_node_fn: nn.Module,
                 update_global_fn: nn.Module) -> None:
        super().__init__()
        self.update_edge_fn = update_edge_fn
        self.update_node_fn = update_node_fn
        self.update_global_fn = update_global_fn
        self._supports_custom_dropout = True

    def forward(self, graph: Any, dropout_rate: float) -> Any:
        nodes, edges, receivers, senders, globals_, n_node, n_edge = graph
        num_nodes, num_graphs = nodes.shape[0], n_node.shape[0]
        edge_globals = torch.repeat_interleave(globals_, n_edge, dim=0,
                                               output_size=edges.shape[0])
        edges = self.update_edge_fn(
            torch.cat([edges, nodes[senders], nodes[receivers], edge_globals], dim=-1),
            dropout_rate)
        node_globals = torch.repeat_interleave(globals_, n_node, dim=0, output_size=num_nodes)
        nodes = self.update_node_fn(
            torch.cat([nodes, _segment_sum(edges, senders, num_nodes),
                       _segment_sum(edges, receivers, num_nodes), node_globals], dim=-1),
            dropout_rate)
        graph_ids = torch.arange(num_graphs, device=n_node.device)
        node_graph = torch.repeat_interleave(graph_ids, n_node, output_size=num_nodes)
        edge_graph = torch.repeat_interleave(graph_ids, n_edge, output_size=edges.shape[0])
        globals_ = self.update_global_fn(
            torch.cat([_segment_sum(nodes, node_graph, num_graphs),
                       _segment_sum(edges, edge_graph, num_graphs), globals_], dim=-1),
            dropout_rate)
        return graph._replace(nodes=nodes, edges=edges, globals=globals_)


class GNN(nn.Module):
    """The graph network; returns the logits of every graph (padding graphs included)."""

    def __init__(self, num_outputs: int = 128, activation_fn_name: str = "relu",
                 latent_dim: int = 256, hidden_dims: tuple[int, ...] = (256,),
                 num_message_passing_steps: int = 5) -> None:
        super().__init__()
        if activation_fn_name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation_fn_name!r}; one of "
                             f"{', '.join(ACTIVATIONS)}")
        activation = ACTIVATIONS[activation_fn_name]
        self.num_outputs = num_outputs
        self.node_embedder = nn.Linear(NODE_FEATURES, latent_dim)
        self.edge_embedder = nn.Linear(EDGE_FEATURES, latent_dim)
        hidden = hidden_dims[-1]
        steps = []
        for step in range(num_message_passing_steps):
            node_width = latent_dim if step == 0 else hidden
            edge_width = latent_dim if step == 0 else hidden
            global_width = num_outputs if step == 0 else hidden
            steps.append(GraphNetwork(
                update_edge_fn=_mlp(edge_width + 2 * node_width + global_width, hidden_dims,
                                    activation),
                update_node_fn=_mlp(node_width + 2 * hidden + global_width, hidden_dims,
                                    activation),
                update_global_fn=_mlp(2 * hidden + global_width, hidden_dims, activation)))
        self.graph_network = SequentialWithDropout(*steps)
        self.decoder = nn.Linear(hidden, num_outputs)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                pytorch_default_init(module)

    def forward(self, graph: Any, dropout_rate: float = 0.1) -> torch.Tensor:
        globals_ = torch.zeros((graph.n_node.shape[0], self.num_outputs),
                               device=graph.nodes.device)
        graph = graph._replace(nodes=self.node_embedder(graph.nodes),
                               edges=self.edge_embedder(graph.edges), globals=globals_)
        graph = self.graph_network(graph, dropout_rate)
        return self.decoder(graph.globals)
