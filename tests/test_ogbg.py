"""ogbg: preparation from OGB's archive, the dynamic batching against jraph's own, the loss
against optax's and PyTorch's sigmoid cross-entropy, and the mAP against scikit-learn.

The model, parity and API are covered for every variant by the conformance and parity suites.
"""

from __future__ import annotations

import gzip
import zipfile

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import optax
import pytest
import torch
from sklearn.metrics import average_precision_score

from algoperf.datasets import ogbg as ogbg_data
from algoperf.datasets.manifest import load as load_manifest
from algoperf.errors import UserError
from algoperf.workloads import registry
from algoperf.workloads.ogbg import input_pipeline, metrics


@pytest.fixture(scope="module")
def graphs() -> ogbg_data.Graphs:
    return ogbg_data.synthetic_graphs(60, seed=3)


# Batching.


def _to_jraph(graphs: ogbg_data.Graphs, index: int) -> jraph.GraphsTuple:
    """Graph ``index`` as AlgoPerf's ``_to_jraph`` builds it from a TFDS example."""
    one = ogbg_data.subset(graphs, np.array([index]))
    labels = np.where(one.labels >= 0, one.labels, np.nan).astype(np.float32)
    senders, receivers = one.edge_index[:, 0], one.edge_index[:, 1]
    return jraph.GraphsTuple(
        n_node=one.num_nodes.astype(np.int64), n_edge=np.array([2 * len(senders)]),
        nodes=one.node_feat.astype(np.float32),
        edges=np.concatenate([one.edge_feat, one.edge_feat]).astype(np.float32),
        senders=np.concatenate([senders, receivers]).astype(np.int64),
        receivers=np.concatenate([receivers, senders]).astype(np.int64), globals=labels)


@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_batches_are_jraphs_dynamically_batched_and_padded_graphs(graphs, batch_size):
    """Our vectorised batching against jraph.dynamically_batch on AlgoPerf's per-graph
    tuples, with AlgoPerf's budgets and its NaN/padding weights."""
    big = [i for i in range(len(graphs)) if graphs.num_nodes[i] > 26 * batch_size
           or 2 * graphs.num_edges[i] > 56 * batch_size]
    order = [i for i in range(len(graphs)) if i not in big]
    ours = list(input_pipeline.batches(graphs, order, batch_size))
    theirs = list(jraph.dynamically_batch(
        (_to_jraph(graphs, i) for i in order), 26 * batch_size + 1, 56 * batch_size,
        batch_size + 1))
    assert len(ours) == len(theirs) > 1
    for mine, reference in zip(ours, theirs, strict=True):
        graph = mine["inputs"]
        for field in ("nodes", "edges", "senders", "receivers", "n_node", "n_edge"):
            np.testing.assert_array_equal(getattr(graph, field), getattr(reference, field),
                                          err_msg=field)
        labels = reference.globals
        padding = jraph.get_graph_padding_mask(reference)
        np.testing.assert_array_equal(mine["targets"], np.nan_to_num(labels, nan=0.0))
        np.testing.assert_array_equal(mine["weights"], (~np.isnan(labels)) * padding[:, None])
        assert len(graph.n_node) == batch_size + 1
        assert len(graph.nodes) == 26 * batch_size + 1 and len(graph.edges) == 56 * batch_size


def test_shards_concatenate_as_jraph_batch_np_and_an_incomplete_batch_is_padded(graphs):
    order = list(range(len(graphs)))
    single = list(input_pipeline.batches(graphs, order, 8))
    sharded = list(input_pipeline.batches(graphs, order, 16, num_shards=2))
    assert len(sharded) == (len(single) + 1) // 2
    for index, batch in enumerate(sharded):
        shards = single[2 * index:2 * index + 2]
        if len(shards) == 1:  # the last batch: one real shard and an empty one
            shards.append(input_pipeline.shard_arrays(graphs, [], input_pipeline.Budget.of(8)))
        expected = jraph.batch_np([jraph.GraphsTuple(*s["inputs"]) for s in shards])
        for field in ("nodes", "edges", "senders", "receivers", "n_node", "n_edge"):
            np.testing.assert_array_equal(getattr(batch["inputs"], field),
                                          getattr(expected, field), err_msg=field)
        np.testing.assert_array_equal(batch["weights"],
                                      np.concatenate([s["weights"] for s in shards]))


def test_one_eval_pass_holds_every_graph_once_in_order(graphs):
    budget = input_pipeline.Budget.of(8)
    seen = []
    for batch in input_pipeline.batches(graphs, range(len(graphs)), 8):
        real = input_pipeline.num_real_graphs(batch["inputs"], budget)
        assert real >= 1 and not batch["weights"][real:].any()
        seen.append(batch["targets"][:real])
    labels = np.concatenate(seen)
    np.testing.assert_array_equal(labels, np.maximum(graphs.labels, 0))


def test_training_order_is_seeded_and_reshuffled_every_epoch():
    first = list(zip(range(20), input_pipeline.shuffled_order(10, seed=5), strict=False))
    again = list(zip(range(20), input_pipeline.shuffled_order(10, seed=5), strict=False))
    ids = [i for _, i in first]
    assert first == again and sorted(ids[:10]) == list(range(10)) and ids[:10] != ids[10:]
    assert [i for _, i in zip(range(10), input_pipeline.shuffled_order(10, 6),
                              strict=False)] != ids[:10]


def test_a_graph_over_the_padding_budget_is_a_user_error(graphs):
    largest = int(np.argmax(graphs.num_nodes))
    with pytest.raises(UserError, match="does not fit the padding budget.*larger batch size"):
        list(input_pipeline.batches(graphs, [largest], 1))


# Loss.


@pytest.mark.parametrize("framework", ["jax", "pytorch"])
def test_loss_is_the_masked_sigmoid_cross_entropy_of_optax_and_torch(framework):
    random = np.random.RandomState(0)
    logits = (4 * random.normal(size=(6, 128))).astype(np.float32)
    labels = (random.rand(6, 128) < 0.3).astype(np.float32)
    weights = (random.rand(6, 128) < 0.5).astype(np.float32)
    workload = registry.import_workload("ogbg", framework)
    convert = jnp.asarray if framework == "jax" else torch.from_numpy
    out = workload.loss_fn(convert(labels), convert(logits), convert(weights))
    expected = np.asarray(optax.sigmoid_binary_cross_entropy(logits, labels)) * weights
    reference = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(labels), reduction="none").numpy() * weights
    np.testing.assert_allclose(np.asarray(out["per_example"]), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(expected, reference, rtol=1e-5, atol=1e-6)
    assert float(out["n_valid_examples"]) == weights.sum()
    smoothed = workload.loss_fn(convert(labels), convert(logits), convert(weights), 0.1)
    target = labels * 0.9 + 0.1 / 128
    np.testing.assert_allclose(np.asarray(smoothed["per_example"]),
                               np.asarray(optax.sigmoid_binary_cross_entropy(logits, target))
                               * weights, rtol=1e-5, atol=1e-5)


# Metrics.


def test_mean_average_precision_is_sklearns_over_labelled_graphs_of_tasks_with_both_classes():
    random = np.random.RandomState(1)
    logits = random.normal(size=(50, 128))
    labels = (random.rand(50, 128) < 0.2).astype(np.float32)
    weights = (random.rand(50, 128) < 0.7).astype(np.float32)
    weights[-3:] = 0  # padding graphs
    labels[:, 5] = 1  # a task with no negative: skipped
    labels[:, 6] = 0  # a task with no positive: skipped
    weights[:, 7] = 0  # an unlabelled task: skipped
    probabilities = jax.nn.sigmoid(logits)
    expected = []
    for task in range(128):
        keep = weights[:, task] > 0
        if len(set(labels[keep, task])) == 2:
            expected.append(average_precision_score(labels[keep, task],
                                                    probabilities[keep, task]))
    assert len(expected) == 125
    value = metrics.mean_average_precision(logits, labels, weights)
    assert value == pytest.approx(np.mean(expected), rel=1e-12)


def test_mean_average_precision_known_value_and_nan_without_tasks():
    # Scores ranked 1, 0, 1, 0: precision 1 at the first positive, 2/3 at the second.
    logits = np.array([[2.0], [1.0], [0.5], [-1.0]])
    labels = np.array([[1.0], [0.0], [1.0], [0.0]])
    ap = metrics.mean_average_precision(np.repeat(logits, 128, 1), np.repeat(labels, 128, 1),
                                        np.ones((4, 128)))
    assert ap == pytest.approx((1 + 2 / 3) / 2)
    assert np.isnan(metrics.mean_average_precision(logits, np.ones((4, 1)), np.ones((4, 1))))


def test_accuracy_and_loss_average_over_labelled_entries_only():
    logits = np.array([[1.0, -1.0], [-2.0, 3.0]])
    labels = np.array([[1.0, 1.0], [0.0, 0.0]])
    weights = np.array([[1.0, 1.0], [1.0, 0.0]])
    result = metrics.eval_metrics(logits, labels, weights)
    assert result["accuracy"] == pytest.approx(2 / 3)
    bce = np.asarray(optax.sigmoid_binary_cross_entropy(logits, labels))
    assert result["loss"] == pytest.approx((bce * weights).sum() / 3)


# Preparation from the official archive.


def _csv_gz(rows: np.ndarray, fmt: str) -> bytes:
    text = "\n".join(",".join("" if np.isnan(v) else fmt % v for v in row) for row in rows)
    return gzip.compress((text + "\n").encode())


def _official_zip(path, graphs: ogbg_data.Graphs, splits: dict[str, np.ndarray]) -> None:
    """A ``pcba.zip`` in OGB's layout (CSV, empty label fields for unlabelled tasks)."""
    labels = np.where(graphs.labels >= 0, graphs.labels, np.nan)
    members = {
        "num-node-list.csv.gz": _csv_gz(graphs.num_nodes[:, None].astype(float), "%d"),
        "num-edge-list.csv.gz": _csv_gz(graphs.num_edges[:, None].astype(float), "%d"),
        "node-feat.csv.gz": _csv_gz(graphs.node_feat.astype(float), "%d"),
        "edge-feat.csv.gz": _csv_gz(graphs.edge_feat.astype(float), "%d"),
        "edge.csv.gz": _csv_gz(graphs.edge_index.astype(float), "%d"),
        "graph-label.csv.gz": _csv_gz(labels, "%.1f"),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"pcba/raw/{name}", data)
        for name, ids in splits.items():
            archive.writestr(f"pcba/split/scaffold/{name}.csv.gz",
                             _csv_gz(ids[:, None].astype(float), "%d"))


def test_prepare_reads_ogbs_archive_into_the_splits_in_index_order(graphs, tmp_path):
    graphs.labels[0, :3] = -1  # leading empty fields
    graphs.labels[1, -2:] = -1  # trailing ones
    permutation = np.random.RandomState(0).permutation(len(graphs))
    splits = {"train": permutation[:40], "valid": permutation[40:50],
              "test": permutation[50:]}
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    out.mkdir()
    _official_zip(raw / "pcba.zip", graphs, splits)
    manifest = load_manifest("ogbg")
    assert [f.name for f in manifest.files] == ["pcba.zip"]
    summary = ogbg_data.prepare(raw, out, manifest)
    assert summary == {"examples": {"train": 40, "validation": 10, "test": 10}}
    assert ogbg_data.counts(out) == summary["examples"]
    for ours, theirs in ogbg_data.SPLITS.items():
        loaded = ogbg_data.load(out, ours)
        expected = ogbg_data.subset(graphs, np.sort(splits[theirs]))
        for field in ("num_nodes", "num_edges", "node_feat", "edge_feat", "edge_index",
                      "labels"):
            np.testing.assert_array_equal(getattr(loaded, field), getattr(expected, field),
                                          err_msg=f"{ours} {field}")


def test_prepare_rejects_an_archive_that_is_not_ogbs(tmp_path):
    with zipfile.ZipFile(tmp_path / "pcba.zip", "w") as archive:
        archive.writestr("pcba/raw/num-node-list.csv.gz", gzip.compress(b"3\n"))
    with pytest.raises(UserError, match="lacks pcba/raw/num-edge-list.csv.gz"):
        ogbg_data.prepare(tmp_path, tmp_path, load_manifest("ogbg"))
    (tmp_path / "pcba.zip").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a zip archive"):
        ogbg_data.prepare(tmp_path, tmp_path, load_manifest("ogbg"))


def test_reading_missing_prepared_data_says_how_to_prepare(tmp_path):
    with pytest.raises(UserError, match="algoperf datasets download ogbg"):
        ogbg_data.load(tmp_path, "train")
