"""criteo1tb: the TSV parsing and hashing against farmhash's own code, the streams (seeded
file order, restart at any batch, every eval line once), the loss against optax's and
PyTorch's, the eval loss against scikit-learn's log loss, JAX-vs-PyTorch parity of every
variant at a reduced vocabulary, and preparation of the official day files (over HTTP too).

API, parameter counts and names, and the parity of the registry rows are covered by the
conformance and parity suites.
"""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
import textwrap
import zipfile

import farmhash
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from sklearn.metrics import log_loss

from algoperf.datasets import criteo1tb as criteo_data
from algoperf.datasets import fetch, manifest, operations
from algoperf.errors import UserError
from algoperf.workloads import registry
from algoperf.workloads.common import parity
from algoperf.workloads.criteo1tb import input_pipeline
from tests.dataset_fixtures import FixtureServer, write_manifest

REDUCED_VOCAB = 65_536  # criteo1tb_test's


def reference_example(line: str) -> tuple[list[float], float]:
    """One TSV line as AlgoPerf's tf.data parser makes it, field by field in plain Python,
    hashing with the pyfarmhash bindings of Google's farmhash (TensorFlow's Fingerprint64)."""
    fields = line.rstrip("\n").split("\t")
    label, counts, categories = fields[0], fields[1:14], fields[14:]
    dense = [math.log(max(float(c), 0.0) + 1) if c not in ("", "-1") else 0.0 for c in counts]
    ids = []
    for column, value in enumerate(categories):
        value = value if value not in ("", "-1") else "00000000"
        bucket = farmhash.fingerprint64(value + str(column)) % \
            int(input_pipeline.RAW_VOCAB_SIZES[column])
        ids.append(float(np.float32(bucket)))
    return dense + ids, float(label)


# Hashing and parsing.


def test_fingerprint64_is_farmhashs_for_every_length_up_to_16():
    random = np.random.RandomState(0)
    strings = [bytes(random.randint(0, 256, n, dtype=np.uint8)) for n in range(1, 17)
               for _ in range(40)]
    data = np.zeros((len(strings), 16), np.uint8)
    for row, s in enumerate(strings):
        data[row, :len(s)] = np.frombuffer(s, np.uint8)
    words = data.view("<u8")
    ours = input_pipeline.fingerprint64(words[:, 0], words[:, 1],
                                        np.array([len(s) for s in strings]))
    np.testing.assert_array_equal(ours, [farmhash.fingerprint64(s) for s in strings])


def test_parsed_lines_are_algoperfs_log_counts_and_hashed_ids_as_float32():
    text = criteo_data.synthetic_lines(300, seed=4).decode()
    lines = text.splitlines(keepends=True)
    # Missing values both ways ('' and '-1'), negative counts and short categorical values.
    lines[0] = "1\t-1\t\t-5\t0\t7\t" + "\t".join(["3"] * 8) + "\t" + "\t".join(
        ["", "-1", "ab", "abcdef12", "0"] + ["68fd1e64"] * 21) + "\n"
    inputs, targets = input_pipeline.parse_lines("".join(lines).encode())
    expected = [reference_example(line) for line in lines]
    np.testing.assert_allclose(inputs[:, :13], [e[0][:13] for e in expected], rtol=1e-6)
    np.testing.assert_array_equal(inputs[:, 13:], np.float32([e[0][13:] for e in expected]))
    np.testing.assert_array_equal(targets[:, 0], [e[1] for e in expected])
    assert inputs.dtype == targets.dtype == np.float32 and targets.shape == (300, 1)


def test_ids_above_two_to_the_24_lose_their_low_bits_as_in_algoperf():
    ids = [reference_example(line)[0][13] for line in
           criteo_data.synthetic_lines(200, seed=1).decode().splitlines()]
    large = [i for i in ids if i > 2 ** 24]
    assert large and all(i % 2 == 0 for i in large)  # float32 spacing is 2 or more there


@pytest.mark.parametrize("line", [b"1\t2\t3\n", b"1" + b"\t" * 40 + b"\n",
                                  b"x" + b"\t" * 39 + b"\n"])
def test_a_line_not_in_criteos_format_is_one_user_error(line):
    with pytest.raises(UserError, match="not Criteo 1TB's TSV format"):
        input_pipeline.parse_lines(line)


# Streams.


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("criteo")
    criteo_data.write_synthetic(root, num_train=230, num_test=40, num_validation=35)
    return root


def all_lines(paths) -> list[str]:
    return [line for path in paths for line in path.read_text().splitlines(keepends=True)]


def test_synthetic_data_has_algoperfs_file_names_and_splits(data_dir):
    directory = data_dir / criteo_data.NAME
    assert criteo_data.counts(directory) == {"train": 230, "validation": 35, "test": 40}
    test_files = [p.name for p, _ in criteo_data.split_files(directory, "test")]
    validation = [p.name for p, _ in criteo_data.split_files(directory, "validation")]
    assert test_files == [f"day_23_{i:02d}" for i in range(19)]
    assert validation == [f"day_23_{i:02d}" for i in range(19, 36)]
    assert (directory / "MANIFEST.json").is_file()


def test_training_batches_read_seeded_file_orders_lines_in_order_and_drop_each_remainder(
        data_dir):
    files = criteo_data.split_files(data_dir / criteo_data.NAME, "train")
    stream = input_pipeline.TrainBatches(files, 32, seed=7)
    batches = [next(stream) for _ in range(14)]  # two epochs of 7 batches (230 // 32)
    assert stream.position == 14
    for epoch in range(2):
        order = np.random.default_rng([7, epoch]).permutation(len(files))
        lines = all_lines([files[i][0] for i in order])[:7 * 32]
        expected = np.array([reference_example(line)[0] for line in lines], np.float32)
        got = np.concatenate([b["inputs"] for b in batches[7 * epoch:7 * epoch + 7]])
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    again = input_pipeline.TrainBatches(files, 32, seed=7)
    np.testing.assert_array_equal(next(again)["inputs"], batches[0]["inputs"])
    other = input_pipeline.TrainBatches(files, 32, seed=8)
    assert not np.array_equal(next(other)["inputs"], batches[0]["inputs"])


@pytest.mark.parametrize("start", [3, 7, 12])
def test_a_training_stream_restarted_at_a_batch_continues_as_the_original(data_dir, start):
    files = criteo_data.split_files(data_dir / criteo_data.NAME, "train")
    original = input_pipeline.TrainBatches(files, 32, seed=2)
    expected = [next(original) for _ in range(start + 2)][start:]
    resumed = input_pipeline.TrainBatches(files, 32, seed=2, start=start)
    assert resumed.position == start
    for batch in expected:
        np.testing.assert_array_equal(next(resumed)["inputs"], batch["inputs"])


def test_a_training_batch_larger_than_the_split_is_a_user_error(data_dir):
    files = criteo_data.split_files(data_dir / criteo_data.NAME, "train")
    with pytest.raises(UserError, match="training batch size 231 must be between 1 and the 230"):
        input_pipeline.TrainBatches(files, 231, seed=0)


def test_an_eval_pass_holds_every_line_once_in_order_the_last_batch_padded(data_dir):
    files = criteo_data.split_files(data_dir / criteo_data.NAME, "validation")
    batches = list(input_pipeline.eval_batches(files, 16, repeat=False))
    assert len(batches) == 3
    weights = np.concatenate([b["weights"] for b in batches])
    np.testing.assert_array_equal(weights, np.arange(48) < 35)
    lines = all_lines([p for p, _ in files])
    got = np.concatenate([b["targets"] for b in batches])[:35, 0]
    np.testing.assert_array_equal(got, [reference_example(line)[1] for line in lines])
    limited = list(input_pipeline.eval_batches(files, 16, repeat=False, limit=20))
    assert [int(b["weights"].sum()) for b in limited] == [16, 4]


def test_a_file_ending_without_a_newline_still_gives_its_last_line(tmp_path):
    (tmp_path / "a").write_bytes(b"1\n2\n3")
    (tmp_path / "b").write_bytes(b"4\n")
    reader = input_pipeline.LineReader([tmp_path / "a", tmp_path / "b"])
    assert reader.skip(1) == 1
    assert b"".join(reader.take(10)) == b"2\n3\n4\n"


# Loss and metric.


@pytest.mark.parametrize("framework", ["jax", "pytorch"])
def test_loss_is_the_masked_sigmoid_cross_entropy_of_optax_and_torch(framework):
    random = np.random.RandomState(0)
    logits = (6 * random.normal(size=(50, 1))).astype(np.float32)
    labels = (random.rand(50, 1) < 0.3).astype(np.float32)
    weights = (random.rand(50) < 0.7).astype(np.float32)
    workload = registry.import_workload("criteo1tb_test", framework)
    convert = jnp.asarray if framework == "jax" else torch.from_numpy
    out = workload.loss_fn(convert(labels), convert(logits), convert(weights), 0.1)
    expected = np.asarray(optax.sigmoid_binary_cross_entropy(logits, labels))[:, 0] * weights
    reference = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(labels), reduction="none").numpy()[:, 0]
    np.testing.assert_allclose(np.asarray(out["per_example"]), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(expected, reference * weights, rtol=1e-5, atol=1e-6)
    assert float(out["n_valid_examples"]) == weights.sum()  # label smoothing is ignored
    assert float(out["summed"]) == pytest.approx(float(expected.sum()), rel=1e-5)


def test_eval_loss_is_sklearns_log_loss_over_each_split(data_dir):
    workload = registry.import_workload("criteo1tb_test", "pytorch")
    model, _ = workload.init_model_fn(parity.trial_rngs(0)[2])
    results = workload.eval_model(16, model, None, None, str(data_dir), None, 0)
    for split in ("validation", "test"):
        files = criteo_data.split_files(data_dir / criteo_data.NAME, split)
        lines = all_lines([p for p, _ in files])
        inputs = torch.tensor([reference_example(line)[0] for line in lines])
        labels = [reference_example(line)[1] for line in lines]
        with torch.no_grad():
            probabilities = torch.sigmoid(model(inputs)).numpy()[:, 0].astype(np.float64)
        assert results[f"{split}/loss"] == pytest.approx(
            log_loss(labels, probabilities, labels=[0, 1]), rel=1e-5)
    assert results["validation/num_examples"] == 35 and results["test/num_examples"] == 40


DDP_EVAL = textwrap.dedent("""
    import json, os, sys
    import torch
    from algoperf.pytorch_utils import pytorch_init, pytorch_setup
    from algoperf.workloads import registry
    from algoperf.workloads.common import parity
    torch.set_num_threads(1)
    use_ddp, rank, _, _ = pytorch_setup()
    pytorch_init(use_ddp, rank, None)
    workload = registry.import_workload("criteo1tb_test", "pytorch")
    model, _ = workload.init_model_fn(parity.trial_rngs(0)[2])
    results = workload.eval_model(16, model, None, None, sys.argv[1], None, 0)
    if rank == 0:
        print(json.dumps(results))
""")


def test_two_torchrun_ranks_evaluate_as_one_process(data_dir, tmp_path):
    """Each rank keeps its half of every batch; the summed losses are all-reduced."""
    script = tmp_path / "ddp_eval.py"
    script.write_text(DDP_EVAL)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", str(script), str(data_dir)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    distributed = json.loads(done.stdout.strip().splitlines()[-1])
    workload = registry.import_workload("criteo1tb_test", "pytorch")
    model, _ = workload.init_model_fn(parity.trial_rngs(0)[2])
    expected = workload.eval_model(16, model, None, None, str(data_dir), None, 0)
    assert distributed.keys() == expected.keys()
    for key, value in expected.items():
        assert distributed[key] == pytest.approx(value, rel=1e-6), key


# Parity of the variants at criteo1tb_test's vocabulary.


@pytest.mark.parametrize("name", ["criteo1tb_layernorm", "criteo1tb_embed_init",
                                  "criteo1tb_resnet"])
def test_variant_parity_at_a_reduced_vocabulary(name, data_dir):
    """The registry rows run full size in the parity suite (full_models tier); here each
    variant's settings at criteo1tb_test's vocabulary, through the same harness."""
    rngs = parity.trial_rngs(0)
    jax_workload = registry.import_workload(name, "jax", vocab_size=REDUCED_VOCAB)
    params, state = jax_workload.init_model_fn(jnp.asarray(np.asarray(rngs[2], np.uint32)))
    torch_workload = registry.import_workload(name, "pytorch", vocab_size=REDUCED_VOCAB)
    model, torch_state = torch_workload.init_model_fn(rngs[2])
    definition = parity.load_definition(name)
    pair = parity.Pair(name, jax_workload, params, state, torch_workload, model, torch_state,
                       definition, parity.tolerances(name, definition))
    pair.reset_pytorch()
    batches = pair.batches(str(data_dir), 8, 3)
    print(parity.output_parity(pair, batches[0]))
    result = parity.training_parity(pair, batches, parity.learning_rate(name, 0.05))
    print(result, result.curves, sep="\n")


# Preparation.


def day_file(day: int, lines: int) -> bytes:
    return gzip.compress(criteo_data.synthetic_lines(lines, seed=day))


def test_prepare_splits_each_day_into_files_of_n_lines_and_day_23_into_test_and_validation(
        tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    sizes = {0: 11, 5: 4, 23: 36 * 3 - 1}
    for day, lines in sizes.items():
        (raw / f"day_{day}.gz").write_bytes(day_file(day, lines))
    m = manifest.load_file(write_manifest(tmp_path / "m.json", "criteo1tb", {
        f"day_{d}.gz": raw / f"day_{d}.gz" for d in sizes}, []))
    out = tmp_path / "out"
    out.mkdir()
    info = criteo_data.prepare_days(raw, out, m, lines_per_file=3, workers=2)
    assert info["examples"] == {"train": 15, "test": 19 * 3, "validation": 17 * 3 - 1}
    names = sorted(p.name for p in out.iterdir() if p.name.startswith("day_"))
    assert names == sorted([f"day_0_{i:02d}" for i in range(4)] + ["day_5_00", "day_5_01"]
                           + [f"day_23_{i:02d}" for i in range(36)])
    for day in sizes:
        pieces = sorted(out.glob(f"day_{day}_*"))
        assert b"".join(p.read_bytes() for p in pieces) == gzip.decompress(
            (raw / f"day_{day}.gz").read_bytes())
        assert [len(p.read_bytes().splitlines()) for p in pieces][:-1] == \
            [3] * (len(pieces) - 1)
    assert criteo_data.files(out)["day_23_35"] == 2


def test_download_and_prepare_from_a_mirror_give_the_prepared_layout(tmp_path):
    bodies = {f"day_{d}.gz": day_file(d, 20 + d) for d in (0, 1, 23)}
    with FixtureServer({f"/criteo/{name}": body for name, body in bodies.items()}) as server:
        m = manifest.load_file(write_manifest(tmp_path / "m.json", "criteo1tb", bodies,
                                              [f"{server.url}/criteo/"]))
        prepared = operations.download(tmp_path / "data", "criteo1tb", m,
                                       options=fetch.Options(retries=2, backoff=0.01,
                                                             timeout=10, jobs=2),
                                       echo=lambda _: None)
    directory = tmp_path / "data" / "criteo1tb"
    assert {e.path for e in prepared.files} == {"meta.json", "day_0_00", "day_1_00", "day_23_00"}
    assert criteo_data.counts(directory) == {"train": 41, "validation": 0, "test": 43}
    assert (directory / "day_23_00").read_bytes() == gzip.decompress(bodies["day_23.gz"])


def test_prepare_reads_the_days_straight_out_of_criteos_all_days_zip(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    out.mkdir()
    with zipfile.ZipFile(raw / "all_days.zip", "w") as archive:
        for day in range(criteo_data.NUM_DAYS):
            archive.writestr(f"all_days/day_{day}.gz", day_file(day, 2 + day % 3))
    info = criteo_data.prepare(raw, out, manifest.load("criteo1tb"))
    assert info["examples"] == {"train": sum(2 + d % 3 for d in range(23)), "validation": 0,
                                "test": 2 + 23 % 3}
    assert sorted(criteo_data.files(out)) == sorted(f"day_{d}_00" for d in range(24))
    assert (out / "day_7_00").read_bytes() == criteo_data.synthetic_lines(3, seed=7)


def test_prepare_without_the_day_files_says_where_to_get_them(tmp_path):
    with pytest.raises(UserError, match="download all_days.zip from https://ailab.criteo.com"):
        criteo_data.prepare(tmp_path, tmp_path, manifest.load("criteo1tb"))
