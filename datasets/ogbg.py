"""ogbg-molpcba: OGB's molecular graphs, unpacked from its official ``pcba.zip`` into arrays.

The archive (the source TFDS's ``ogbg_molpcba:0.1.3``, which AlgoPerf reads, downloads too)
holds ``pcba/raw/*.csv.gz``: per-graph node counts and edge counts, 9 integer atom features
per node, 3 integer bond features per edge, each bond once as a (source, target) pair of
graph-local node indices, and 128 binary task labels per graph with empty fields where a task
is unlabelled; and ``pcba/split/scaffold/{train,valid,test}.csv.gz``, the graph indices of
OGB's scaffold split (350,343 / 43,793 / 43,793 of 437,929 graphs). Preparation reads the
CSVs straight from the archive and writes one ``<split>.npz`` per split, graphs in index order
as TFDS yields them:

- ``num_nodes``, ``num_edges`` int32 (G,): per graph, edges counted once;
- ``node_feat`` uint8 (sum nodes, 9), ``edge_feat`` uint8 (sum edges, 3): every OGB feature
  is a category index below 256; the pipeline feeds them to the model as float32, as TFDS;
- ``edge_index`` int32 (sum edges, 2): graph-local (sender, receiver), one direction; the
  input pipeline adds the reverse edges, as AlgoPerf's does;
- ``labels`` int8 (G, 128): 1, 0, or -1 where unlabelled (NaN in TFDS);
- ``graph_index`` int32 (G,): the graph's index in OGB's files;

and ``meta.json`` with the number of graphs per split. ``write_synthetic`` writes the same
layout with random molecules-like graphs for ``algoperf workloads check`` and the tests.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from algoperf.datasets import content
from algoperf.datasets.manifest import Manifest
from algoperf.errors import UserError

NAME = "ogbg"
NUM_TASKS = 128
NODE_FEATURES = 9
EDGE_FEATURES = 3
SPLITS = {"train": "train", "validation": "valid", "test": "test"}  # ours -> OGB's file
OFFICIAL_COUNTS = {"train": 350_343, "validation": 43_793, "test": 43_793}
META_FILE = "meta.json"
RAW = "pcba/raw"
SPLIT_DIR = "pcba/split/scaffold"


@dataclasses.dataclass(frozen=True)
class Graphs:
    """One split: the graphs' arrays and their offsets into the node and edge arrays."""

    num_nodes: np.ndarray
    num_edges: np.ndarray
    node_feat: np.ndarray
    edge_feat: np.ndarray
    edge_index: np.ndarray
    labels: np.ndarray  # int8, -1 unlabelled

    def __len__(self) -> int:
        return len(self.num_nodes)

    @property
    def node_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.num_nodes, dtype=np.int64)[:-1]])

    @property
    def edge_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.num_edges, dtype=np.int64)[:-1]])


def _csv(archive: zipfile.ZipFile, member: str, dtype: type, columns: int) -> np.ndarray:
    """A gzipped CSV of numbers from the archive as a (rows, columns) array; empty fields
    become NaN (the unlabelled tasks)."""
    try:
        text = gzip.decompress(archive.read(member))
    except KeyError:
        raise UserError(f"the ogbg-molpcba archive lacks {member}; it is not OGB's "
                        "pcba.zip") from None
    if b",," in text or b"\n," in text or b",\n" in text:
        for _ in range(2):  # ',,,' needs two passes: replacements do not overlap
            text = text.replace(b",,", b",nan,")
        text = text.replace(b"\n,", b"\nnan,").replace(b",\n", b",nan\n")
        if text.startswith(b","):
            text = b"nan" + text
    values = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    if values.shape[1] != columns:
        raise UserError(f"{member} in the ogbg-molpcba archive has {values.shape[1]} columns, "
                        f"not {columns}; the archive is not OGB's pcba.zip")
    return values.astype(dtype) if dtype is not np.float64 else values


def _small_ints(values: np.ndarray, member: str) -> np.ndarray:
    if values.size and (values.min() < 0 or values.max() > 255 or
                        not np.array_equal(values, np.round(values))):
        raise UserError(f"{member} holds values that are not category indices 0-255")
    return values.astype(np.uint8)


def prepare(raw_dir: Path, out: Path, manifest: Manifest) -> dict:
    """Reads ``raw_dir/pcba.zip`` and writes the three splits' arrays to ``out``."""
    (archive_file,) = manifest.files
    try:
        archive = zipfile.ZipFile(raw_dir / archive_file.name)
    except zipfile.BadZipFile:
        raise UserError(f"{archive_file.name} is not a zip archive; download it again") \
            from None
    with archive:
        num_nodes = _csv(archive, f"{RAW}/num-node-list.csv.gz", np.int64, 1)[:, 0]
        num_edges = _csv(archive, f"{RAW}/num-edge-list.csv.gz", np.int64, 1)[:, 0]
        node_feat = _small_ints(_csv(archive, f"{RAW}/node-feat.csv.gz", np.float64,
                                     NODE_FEATURES), "node-feat.csv.gz")
        edge_feat = _small_ints(_csv(archive, f"{RAW}/edge-feat.csv.gz", np.float64,
                                     EDGE_FEATURES), "edge-feat.csv.gz")
        edge_index = _csv(archive, f"{RAW}/edge.csv.gz", np.int64, 2)
        labels = _csv(archive, f"{RAW}/graph-label.csv.gz", np.float64, NUM_TASKS)
        splits = {ours: np.sort(_csv(archive, f"{SPLIT_DIR}/{theirs}.csv.gz", np.int64, 1)[:, 0])
                  for ours, theirs in SPLITS.items()}
    if len(num_edges) != len(num_nodes) or len(labels) != len(num_nodes) or \
            num_nodes.sum() != len(node_feat) or num_edges.sum() != len(edge_index) or \
            len(edge_feat) != len(edge_index):
        raise UserError("the ogbg-molpcba archive's node, edge and label files do not agree "
                        "in size; the archive is damaged or not OGB's pcba.zip")
    label_codes = np.where(np.isnan(labels), -1, labels)
    if not np.isin(label_codes, (-1, 0, 1)).all():
        raise UserError("graph-label.csv.gz holds labels other than 0, 1 and empty")
    all_graphs = Graphs(num_nodes.astype(np.int32), num_edges.astype(np.int32), node_feat,
                        edge_feat, edge_index.astype(np.int32), label_codes.astype(np.int8))
    counts = {}
    for split, indices in splits.items():
        if indices.size and (indices.min() < 0 or indices.max() >= len(num_nodes)):
            raise UserError(f"the {SPLITS[split]} split names graphs the archive lacks")
        save(out, split, subset(all_graphs, indices), indices)
        counts[split] = int(len(indices))
    (out / META_FILE).write_text(json.dumps({"graphs": counts}, indent=1) + "\n")
    return {"examples": counts}


def subset(graphs: Graphs, indices: np.ndarray) -> Graphs:
    """The graphs ``indices`` of ``graphs``, in that order."""
    def rows(offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
        lengths = counts[indices].astype(np.int64)
        starts = np.repeat(offsets[indices] - np.cumsum(lengths) + lengths, lengths)
        return starts + np.arange(lengths.sum())

    node_rows = rows(graphs.node_offsets, graphs.num_nodes)
    edge_rows = rows(graphs.edge_offsets, graphs.num_edges)
    return Graphs(graphs.num_nodes[indices], graphs.num_edges[indices],
                  graphs.node_feat[node_rows], graphs.edge_feat[edge_rows],
                  graphs.edge_index[edge_rows], graphs.labels[indices])


def save(directory: Path, split: str, graphs: Graphs, graph_index: np.ndarray) -> None:
    """Writes ``graphs`` as ``directory/<split>.npz``."""
    np.savez(directory / f"{split}.npz", graph_index=graph_index.astype(np.int32),
             **{field.name: getattr(graphs, field.name) for field in dataclasses.fields(Graphs)})


def load(directory: Path, split: str) -> Graphs:
    """The prepared ``split`` ('train', 'validation' or 'test') in ``directory``."""
    path = Path(directory) / f"{split}.npz"
    try:
        with np.load(path, allow_pickle=False) as arrays:
            graphs = Graphs(**{field.name: arrays[field.name]
                               for field in dataclasses.fields(Graphs)})
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read prepared ogbg-molpcba {path} ({e}); prepare it with: "
                        "algoperf datasets download ogbg") from None
    if graphs.labels.shape != (len(graphs), NUM_TASKS) or \
            graphs.node_feat.shape != (int(graphs.num_nodes.sum()), NODE_FEATURES) or \
            graphs.edge_index.shape != (int(graphs.num_edges.sum()), 2):
        raise UserError(f"prepared ogbg-molpcba {path} has arrays of unexpected shapes; "
                        "prepare it again with: algoperf datasets prepare ogbg --force")
    return graphs


def counts(directory: Path) -> dict[str, int]:
    """The number of graphs of each split of the prepared data in ``directory``."""
    try:
        return json.loads((Path(directory) / META_FILE).read_text())["graphs"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read {Path(directory) / META_FILE} ({e}); prepare "
                        "ogbg-molpcba with: algoperf datasets download ogbg") from None


def synthetic_graphs(count: int, seed: int) -> Graphs:
    """``count`` random connected graphs shaped like molpcba's: 10-40 nodes (mean ~25), a
    chain plus a few ring bonds, features in OGB's ranges, ~10% of labels set, 1 in 10 of
    those positive, and every task positive in some graph of a split of 20 or more."""
    random = np.random.RandomState(seed)
    num_nodes = random.randint(10, 41, count).astype(np.int32)
    edges, num_edges = [], []
    for n in num_nodes:
        chain = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
        rings = random.randint(0, n, (random.randint(0, 4), 2))
        rings = rings[rings[:, 0] != rings[:, 1]]
        graph_edges = np.concatenate([chain, rings])
        edges.append(graph_edges)
        num_edges.append(len(graph_edges))
    edge_index = np.concatenate(edges).astype(np.int32)
    total_nodes, total_edges = int(num_nodes.sum()), len(edge_index)
    node_feat = random.randint(0, [119, 4, 12, 12, 10, 6, 6, 2, 2],
                               (total_nodes, NODE_FEATURES)).astype(np.uint8)
    edge_feat = random.randint(0, [5, 6, 2], (total_edges, EDGE_FEATURES)).astype(np.uint8)
    labelled = random.rand(count, NUM_TASKS) < 0.1
    labels = np.where(labelled, (random.rand(count, NUM_TASKS) < 0.1).astype(np.int8), -1)
    for task in range(NUM_TASKS):  # a positive and a negative of every task, where they fit
        if count >= 2:
            labels[task % count, task] = 1
            labels[(task + 1) % count, task] = 0
    return Graphs(num_nodes, np.asarray(num_edges, np.int32), node_feat, edge_feat,
                  edge_index, labels.astype(np.int8))


def write_synthetic(data_dir: Path, num_train: int = 400, num_test: int = 100) -> Path:
    """Writes synthetic ogbg-molpcba into ``data_dir/ogbg`` in the prepared layout (validation
    and test of ``num_test`` graphs each) with its content manifest; returns the folder."""
    directory = Path(data_dir) / NAME
    directory.mkdir(parents=True, exist_ok=True)
    sizes = {"train": num_train, "validation": num_test, "test": num_test}
    for seed, (split, count) in enumerate(sizes.items()):
        save(directory, split, synthetic_graphs(count, seed), np.arange(count))
    (directory / META_FILE).write_text(json.dumps({"graphs": sizes}, indent=1) + "\n")
    content.write(directory, content.scan(directory, NAME, {"synthetic": True}))
    return directory
