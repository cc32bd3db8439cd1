"""The ogbg input pipeline: molpcba graphs, both edge directions, dynamically batched.

AlgoPerf's pipeline (TFDS, then ``jraph.dynamically_batch`` per device shard) in numpy on the
prepared arrays (``algoperf.datasets.ogbg``), the same numbers with one vectorised gather per
batch instead of a Python object per graph:

- each graph's bonds appear twice, first as stored, then reversed (AlgoPerf's ``_to_jraph``),
  with the bond features repeated;
- a batch of ``b`` graphs is ``num_shards`` shards of ``b' = b // num_shards`` graphs' budget:
  at most ``26 b' + 1`` nodes, ``56 b'`` edges and ``b' + 1`` graphs each; graphs are added in
  stream order while all three fit (``jraph.dynamically_batch``'s greedy rule, one graph,
  node and slot kept for padding), then the shard is padded to exactly those sizes as
  ``jraph.pad_with_graphs`` pads: one padding graph holding every padding node and edge
  (padding edges join the first padding node to itself), then empty graphs;
- shards are concatenated as ``jraph.batch_np`` concatenates them (node indices offset);
- ``targets`` are the labels with unlabelled tasks as 0, ``weights`` 1 where a task of a real
  graph is labelled and 0 elsewhere (AlgoPerf's ``_get_weights_by_nan_and_padding``).

Training streams seeded per-epoch permutations of the split (AlgoPerf: shuffled files and a
2^15-graph buffer); evaluation walks a split in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from algoperf.datasets import ogbg as ogbg_data
from algoperf.errors import UserError

AVG_NODES_PER_GRAPH = 26
AVG_EDGES_PER_GRAPH = 56


class GraphsTuple(NamedTuple):
    """jraph's ``GraphsTuple`` fields, in its order, without importing JAX."""

    nodes: Any
    edges: Any
    receivers: Any
    senders: Any
    globals: Any
    n_node: Any
    n_edge: Any


class Budget(NamedTuple):
    """The padded size of one shard: AlgoPerf's budgets for ``graphs - 1`` average graphs."""

    nodes: int
    edges: int
    graphs: int

    @classmethod
    def of(cls, per_shard_batch_size: int) -> Budget:
        return cls(AVG_NODES_PER_GRAPH * per_shard_batch_size + 1,
                   AVG_EDGES_PER_GRAPH * per_shard_batch_size, per_shard_batch_size + 1)


def shard_budget(global_batch_size: int, num_shards: int) -> Budget:
    """The budget of each of ``num_shards`` shards of a batch of ``global_batch_size``."""
    per_shard = global_batch_size // num_shards
    if per_shard < 1:
        raise UserError(f"batch size {global_batch_size} is smaller than the {num_shards} "
                        "devices it is split over; use a batch size of at least that")
    return Budget.of(per_shard)


def pack(sizes: Iterable[int], graphs: ogbg_data.Graphs, budget: Budget) -> Iterator[list[int]]:
    """Graph ids from ``sizes`` (an iterable of ids) grouped greedily into shards that fit
    ``budget`` with room for one padding node and graph (``jraph.dynamically_batch``)."""
    max_nodes, max_edges, max_graphs = budget.nodes - 1, budget.edges, budget.graphs - 1
    shard: list[int] = []
    nodes = edges = 0
    for graph in sizes:
        graph_nodes = int(graphs.num_nodes[graph])
        graph_edges = 2 * int(graphs.num_edges[graph])
        if graph_nodes > max_nodes or graph_edges > max_edges:
            raise UserError(
                f"a graph of {graph_nodes} nodes and {graph_edges} edges does not fit the "
                f"padding budget of {max_nodes} nodes and {max_edges} edges of "
                f"{budget.graphs - 1} graphs per device; use a larger batch size")
        if shard and (len(shard) + 1 > max_graphs or nodes + graph_nodes > max_nodes
                      or edges + graph_edges > max_edges):
            yield shard
            shard, nodes, edges = [], 0, 0
        shard.append(graph)
        nodes += graph_nodes
        edges += graph_edges
    if shard:
        yield shard


def _ranges(offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(offset, offset + length)`` over the pairs."""
    starts = np.cumsum(lengths) - lengths
    return np.repeat(offsets - starts, lengths) + np.arange(int(lengths.sum()))


def shard_arrays(graphs: ogbg_data.Graphs, ids: list[int], budget: Budget) -> dict[str, Any]:
    """One padded shard of the graphs ``ids``: its ``GraphsTuple`` (globals ``{}``), targets
    and weights, in numpy."""
    ids = np.asarray(ids, dtype=np.int64)
    n_node = graphs.num_nodes[ids].astype(np.int64)
    n_bond = graphs.num_edges[ids].astype(np.int64)
    node_rows = _ranges(graphs.node_offsets[ids], n_node)
    # Directed edge k of a graph with E bonds: bond k % E, reversed from k = E on.
    n_edge = 2 * n_bond
    local = _ranges(np.zeros_like(n_edge), n_edge)
    bonds_per_edge = np.repeat(n_bond, n_edge)
    bond_rows = np.repeat(graphs.edge_offsets[ids], n_edge) + local % bonds_per_edge
    reverse = local >= bonds_per_edge
    pairs = graphs.edge_index[bond_rows].astype(np.int32)
    node_offset = np.repeat(np.cumsum(n_node) - n_node, n_edge).astype(np.int32)
    senders = np.where(reverse, pairs[:, 1], pairs[:, 0]) + node_offset
    receivers = np.where(reverse, pairs[:, 0], pairs[:, 1]) + node_offset

    real_nodes, real_edges, real_graphs = len(node_rows), len(bond_rows), len(ids)
    pad_nodes, pad_edges = budget.nodes - real_nodes, budget.edges - real_edges
    nodes = np.zeros((budget.nodes, ogbg_data.NODE_FEATURES), np.float32)
    nodes[:real_nodes] = graphs.node_feat[node_rows]
    edges = np.zeros((budget.edges, ogbg_data.EDGE_FEATURES), np.float32)
    edges[:real_edges] = graphs.edge_feat[bond_rows]
    first_pad_node = np.int32(real_nodes)
    senders = np.concatenate([senders, np.full(pad_edges, first_pad_node)]).astype(np.int32)
    receivers = np.concatenate([receivers, np.full(pad_edges, first_pad_node)]).astype(np.int32)
    empty = budget.graphs - real_graphs - 1
    n_node_all = np.concatenate([n_node, [pad_nodes], np.zeros(empty, np.int64)]).astype(np.int32)
    n_edge_all = np.concatenate([n_edge, [pad_edges], np.zeros(empty, np.int64)]).astype(np.int32)

    labels = np.full((budget.graphs, ogbg_data.NUM_TASKS), -1, np.int8)
    labels[:real_graphs] = graphs.labels[ids]
    weights = (labels >= 0).astype(np.float32)
    targets = np.maximum(labels, 0).astype(np.float32)
    graph = GraphsTuple(nodes, edges, receivers, senders, {}, n_node_all, n_edge_all)
    return {"inputs": graph, "targets": targets, "weights": weights}


def concatenate(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """Shards as one batch, node indices offset as ``jraph.batch_np`` offsets them."""
    if len(shards) == 1:
        return shards[0]
    offsets = np.cumsum([0] + [len(s["inputs"].nodes) for s in shards[:-1]]).astype(np.int32)
    graphs = [s["inputs"] for s in shards]
    graph = GraphsTuple(
        nodes=np.concatenate([g.nodes for g in graphs]),
        edges=np.concatenate([g.edges for g in graphs]),
        receivers=np.concatenate([g.receivers + o for g, o in zip(graphs, offsets, strict=True)]),
        senders=np.concatenate([g.senders + o for g, o in zip(graphs, offsets, strict=True)]),
        globals={},
        n_node=np.concatenate([g.n_node for g in graphs]),
        n_edge=np.concatenate([g.n_edge for g in graphs]))
    return {"inputs": graph, "targets": np.concatenate([s["targets"] for s in shards]),
            "weights": np.concatenate([s["weights"] for s in shards])}


def batches(graphs: ogbg_data.Graphs, order: Iterable[int], global_batch_size: int,
            num_shards: int = 1) -> Iterator[dict[str, Any]]:
    """Batches of the graphs ``order`` names, ``num_shards`` padded shards each; a last
    incomplete batch is completed with empty (all-padding) shards."""
    budget = shard_budget(global_batch_size, num_shards)
    shards: list[dict[str, Any]] = []
    for ids in pack(order, graphs, budget):
        shards.append(shard_arrays(graphs, ids, budget))
        if len(shards) == num_shards:
            yield concatenate(shards)
            shards = []
    if shards:
        empty = shard_arrays(graphs, [], budget)
        yield concatenate(shards + [empty] * (num_shards - len(shards)))


def shuffled_order(num_graphs: int, seed: int) -> Iterator[int]:
    """Endless graph ids: one ``RandomState(seed)`` permutation of the split per epoch."""
    random_state = np.random.RandomState(seed)
    while True:
        yield from random_state.permutation(num_graphs).tolist()


def eval_train_ids(num_train: int, num_eval_train: int) -> np.ndarray:
    """The fixed training graphs 'eval_train' evaluates: a seeded sample, in index order."""
    sample = np.random.RandomState(0).permutation(num_train)[:num_eval_train]
    return np.sort(sample)


def num_real_graphs(graph: GraphsTuple, budget: Budget) -> int:
    """Real graphs in a batch of shards padded to ``budget``: in each shard, the graphs
    before its padding graph, which is the last one holding nodes (it holds at least one)."""
    n_node = np.asarray(graph.n_node).reshape(-1, budget.graphs)
    return sum(int(np.flatnonzero(shard)[-1]) for shard in n_node)
