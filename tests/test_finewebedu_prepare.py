"""FineWeb-Edu preparation end to end, from shards and BPE tables in the official formats.

The shards are parquet files with FineWeb-Edu's columns (``text``, ``id``, ``dump``, ``url``,
...), named as ``sample/10BT`` names them, served by a real HTTP server on 127.0.0.1
(tests/dataset_fixtures.py) under the Hub's ``resolve`` URLs, beside the Hub's tree API answer
that lists them with their sizes and sha256. GPT-2's BPE tables cannot be downloaded here, so
the tests train a small byte-level BPE with Hugging Face ``tokenizers`` and write it in GPT-2's
format (``encoder.json`` with ``<|endoftext|>`` after the merged tokens, ``vocab.bpe`` with the
merges in order): the preparation reads it through the same code as the real tables. The
prepared streams are checked against Hugging Face's own ``Dataset.shuffle(seed=1996)`` and
GPT-2's tokenizer as ``tokenizers`` builds it, AlgoPerf's code path.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_fixtures import Downloaded, Fault, FixtureServer, write_manifest

from algoperf.datasets import content, fetch, manifest, operations
from algoperf.datasets import finewebedu as fw
from algoperf.errors import UserError

FAST = fetch.Options(retries=3, backoff=0.01, timeout=10, jobs=2)
REPO = "HuggingFaceFW/fineweb-edu"
RESOLVE = f"/datasets/{REPO}/resolve/main/sample/10BT/"
TREE = f"/api/datasets/{REPO}/tree/main/sample%2F10BT"
TABLES = "/gpt-2/encodings/main/"
SHARDS = ("000_00000.parquet", "001_00000.parquet", "002_00000.parquet")
# Texts the tokenizer must treat as GPT-2's does: no EOS after an empty text, the special
# token inside a text, whitespace runs, contractions, non-ASCII bytes.
SPECIAL_TEXTS = ["", "ends a document <|endoftext|> inside the text", "  two spaces\n\n\ttab",
                 "it's we'll they've I'd", "Grüße aus Köln, 東京 🎉", "numbers 123 4567",
                 "trailing spaces   ", "crlf\r\nline \n\n\n", "\n"]


def quiet(_: str) -> None:
    pass


def make_texts(seed: int = 0, count: int = 90) -> list[str]:
    random = np.random.RandomState(seed)
    words = ["".join(random.choice(list("abcdefghijklmnopqrstuvwxyz"), random.randint(1, 9)))
             for _ in range(300)]
    texts = [" ".join(random.choice(words, random.randint(3, 60))).capitalize() + "."
             for _ in range(count)]
    for k, text in enumerate(SPECIAL_TEXTS):
        texts[7 * k + 3] = text
    return texts


def write_shard(path: Path, texts: list[str], first_row: int) -> Path:
    """A parquet shard with FineWeb-Edu's columns, in small row groups."""
    n = len(texts)
    table = pa.table({
        "text": pa.array(texts, pa.string()),
        "id": [f"<urn:uuid:{first_row + i:08d}-0000-0000-0000-000000000000>" for i in range(n)],
        "dump": ["CC-MAIN-2024-10"] * n,
        "url": [f"https://example.org/{first_row + i}" for i in range(n)],
        "file_path": ["s3://commoncrawl/crawl-data/fixture.warc.gz"] * n,
        "language": ["en"] * n, "language_score": pa.array([0.97] * n, pa.float64()),
        "token_count": pa.array([len(t.split()) for t in texts], pa.int64()),
        "score": pa.array([3.2] * n, pa.float64()), "int_score": pa.array([3] * n, pa.int64())})
    pq.write_table(table, path, row_group_size=8)
    return path


def write_tables(folder: Path, texts: list[str], merges: int = 300) -> dict[str, Path]:
    """A byte-level BPE trained on ``texts`` with Hugging Face tokenizers, written in GPT-2's
    format: the 256 byte tokens, the merged tokens in merge order, then <|endoftext|>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=256 + merges, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    vocab_path, merges_path = tokenizer.model.save(str(folder))
    vocab = json.loads(Path(vocab_path).read_text())
    vocab[fw.END_OF_TEXT] = len(vocab)
    (folder / "encoder.json").write_text(json.dumps(vocab))
    Path(merges_path).rename(folder / "vocab.bpe")
    Path(vocab_path).unlink()
    return {name: folder / name for name in fw.BPE_FILES}


def gpt2_tokenizer(tables: dict[str, Path]):
    """GPT-2's tokenizer as Hugging Face's GPT2TokenizerFast builds it from the two tables."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE.from_file(str(tables["encoder.json"]),
                                               str(tables["vocab.bpe"])))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(fw.END_OF_TEXT, special=True)])
    return tokenizer


@dataclasses.dataclass(frozen=True)
class Official:
    folder: Path
    texts: list[str]
    files: dict[str, Path]  # the two tables and the shards


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Official:
    folder = tmp_path_factory.mktemp("official")
    texts = make_texts()
    files = write_tables(folder, texts)
    for k, name in enumerate(SHARDS):
        files[name] = write_shard(folder / name, texts[30 * k:30 * (k + 1)], 30 * k)
    return Official(folder, texts, files)


def tree_listing(official: Official) -> bytes:
    """The Hub's tree API answer for sample/10BT: one entry per shard, LFS oid = sha256."""
    from algoperf.hashing import file_sha256

    return json.dumps([
        {"type": "file", "oid": "0" * 40, "size": official.files[name].stat().st_size,
         "path": f"sample/10BT/{name}",
         "lfs": {"oid": file_sha256(official.files[name]),
                 "size": official.files[name].stat().st_size, "pointerSize": 135}}
        for name in SHARDS] + [{"type": "directory", "oid": "1" * 40, "size": 0,
                                "path": "sample/10BT/extra"}]).encode()


def serve(server: FixtureServer, official: Official) -> None:
    for name, path in official.files.items():
        server.files[(TABLES if name in fw.BPE_FILES else RESOLVE) + name] = path
    server.files[TREE] = tree_listing(official)


def fixture_manifest(tmp_path: Path, official: Official, url: str) -> manifest.Manifest:
    tables = {name: official.files[name] for name in fw.BPE_FILES}
    return manifest.load_file(write_manifest(tmp_path / "finewebedu.json", "finewebedu", tables,
                                             [url + TABLES, url + RESOLVE]))


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory, official) -> Downloaded:
    """``download`` from the local server, the second shard's transfer cut after 3,000 bytes."""
    tmp_path = tmp_path_factory.mktemp("download")
    with FixtureServer() as server:
        serve(server, official)
        server.add_fault(RESOLVE + SHARDS[1], Fault(cut_after=3000))
        data_dir = tmp_path / "data"
        result = operations.download(data_dir, "finewebedu",
                                     fixture_manifest(tmp_path, official, server.url),
                                     options=FAST, echo=quiet)
        ranges = [r for _, _, r in server.requests_for(RESOLVE + SHARDS[1])]
    return Downloaded(data_dir, result, ranges)


def expected_streams(official: Official, cache: Path) -> dict[str, np.ndarray]:
    """AlgoPerf's preparation with the libraries it uses: load_dataset of the shards,
    shuffle(seed=1996), GPT-2's tokenizer on text + <|endoftext|>, one stream, validation
    first."""
    hf = fw.hf_datasets()
    rows = hf.load_dataset("parquet", data_files=[str(official.files[n]) for n in SHARDS],
                           split="train", cache_dir=str(cache)).shuffle(seed=1996)
    tokenizer = gpt2_tokenizer(official.files)
    ids = [tokenizer.encode(text + fw.END_OF_TEXT if text else text).ids
           for text in rows["text"]]
    stream = np.asarray([i for doc in ids for i in doc], np.int64)
    cut = min(fw.VALIDATION_TOKENS, len(stream) // 10)
    return {"validation": stream[:cut], "train": stream[cut:]}


# Download and the prepared layout.

def test_the_shards_listed_by_the_hub_download_resuming_an_interrupted_one(downloaded):
    assert downloaded.ranges == [None, "bytes=3000-"]
    assert operations.status(downloaded.data_dir, "finewebedu").state == "prepared"
    assert content.read(downloaded.data_dir / "finewebedu").root == downloaded.result.root
    assert sorted(p.name for p in (downloaded.data_dir / "downloads" / "finewebedu").iterdir()) \
        == sorted([*fw.BPE_FILES, *SHARDS, fw.LISTING_FILE])
    assert not (downloaded.data_dir / ".finewebedu.work").exists()


def test_the_streams_are_algoperfs_shuffled_documents_in_gpt2_tokens(downloaded, official,
                                                                     tmp_path):
    directory = downloaded.data_dir / "finewebedu"
    expected = expected_streams(official, tmp_path / "hf-cache")
    for split in fw.SPLITS:
        np.testing.assert_array_equal(fw.tokens(directory, split), expected[split])
    source = downloaded.result.source
    assert source["documents"] == len(official.texts) and source["shuffle_seed"] == 1996
    assert source["tokens"] == {split: len(expected[split]) for split in fw.SPLITS}
    assert sorted(source["shards"]) == list(SHARDS)
    meta = json.loads((directory / fw.META_FILE).read_text())
    assert meta == {"tokens": source["tokens"], "vocab_size": source["end_of_text"] + 1}


def test_an_empty_text_adds_no_token_and_the_special_token_in_a_text_is_kept(official):
    encoding = fw.load_bpe(official.folder)
    eos = encoding.eot_token
    empty, inside, plain = fw.encode_documents(encoding, ["", SPECIAL_TEXTS[1], "abc"])
    assert len(empty) == 0
    assert list(inside).count(eos) == 2 and inside[-1] == eos
    tokenizer = gpt2_tokenizer(official.files)
    assert list(plain) == tokenizer.encode("abc").ids + [eos]
    assert tokenizer.decode(list(inside), skip_special_tokens=False) == \
        SPECIAL_TEXTS[1] + fw.END_OF_TEXT


def test_the_workload_cuts_the_prepared_train_stream_into_windows(downloaded):
    stream = fw.tokens(downloaded.data_dir / "finewebedu", "train")
    inputs, targets = fw.windows(stream, 8)
    assert inputs.shape == (len(stream) // 9, 8)
    np.testing.assert_array_equal(inputs[1, 1:], targets[1, :-1])


def test_cli_download_shows_progress_and_gives_the_same_root(tmp_path, official, downloaded):
    with FixtureServer() as server:
        serve(server, official)
        tables = {name: official.files[name] for name in fw.BPE_FILES}
        fixture = write_manifest(tmp_path / "m.json", "finewebedu", tables,
                                 [server.url + TABLES, server.url + RESOLVE])
        done = subprocess.run([sys.executable, "-m", "algoperf", "datasets", "download",
                               "finewebedu", "--data-dir", str(tmp_path / "d"), "--manifest",
                               str(fixture)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "000_00000.parquet: 30 documents" in done.stderr
    assert content.read(tmp_path / "d" / "finewebedu").root == downloaded.result.root


# Interruptions and bad input.

def test_a_download_that_failed_on_a_shard_is_resumed_not_prepared_from_the_rest(
        tmp_path, official, downloaded):
    data_dir = tmp_path / "data"
    with FixtureServer() as server:
        serve(server, official)
        server.add_fault(RESOLVE + SHARDS[2], Fault(status=404))
        m = fixture_manifest(tmp_path, official, server.url)
        one_at_a_time = dataclasses.replace(FAST, jobs=1)  # shards 0 and 1 complete first
        with pytest.raises(UserError, match="could not download 002_00000.parquet"):
            operations.download(data_dir, "finewebedu", m, options=one_at_a_time, echo=quiet)
        assert operations.status(data_dir, "finewebedu").state != "prepared"
        before = len(server.requests_for(RESOLVE + SHARDS[0]))
        result = operations.download(data_dir, "finewebedu", m, options=FAST, echo=quiet)
        assert len(server.requests_for(RESOLVE + SHARDS[0])) == before  # kept, not fetched
    assert result.root == downloaded.result.root


def test_an_interrupted_tokenisation_resumes_with_the_shards_done(tmp_path, official, downloaded,
                                                                  capfd):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, path in official.files.items():
        (raw / name).write_bytes(path.read_bytes())
    (raw / SHARDS[2]).write_bytes(b"PAR1 not really parquet")
    m = fixture_manifest(tmp_path, official, "http://127.0.0.1:9")
    data_dir = tmp_path / "data"
    with pytest.raises(UserError, match="002_00000.parquet is not a readable parquet file") as e:
        operations.prepare(data_dir, "finewebedu", m, raw_dir=raw, echo=quiet)
    assert "\n" not in str(e.value) and not (data_dir / "finewebedu").exists()
    capfd.readouterr()
    (raw / SHARDS[2]).write_bytes(official.files[SHARDS[2]].read_bytes())
    resumed = operations.prepare(data_dir, "finewebedu", m, raw_dir=raw, echo=quiet)
    err = capfd.readouterr().err
    assert "000_00000.parquet: 30 documents, tokenised before" in err
    assert "002_00000.parquet: 30 documents, " in err and "002_00000.parquet: 30 documents, " \
        "tokenised before" not in err
    assert resumed.root == downloaded.result.root


def test_a_shard_without_fineweb_edus_columns_is_refused(tmp_path, official):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in fw.BPE_FILES:
        (raw / name).write_bytes(official.files[name].read_bytes())
    pq.write_table(pa.table({"text": ["a b c"]}), raw / SHARDS[0])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match="has no column id, dump.*not a FineWeb-Edu shard"):
        fw.prepare(raw, out, fixture_manifest(tmp_path, official, "http://127.0.0.1:9"))


def test_missing_or_mismatched_bpe_tables_say_where_to_get_them(tmp_path, official):
    with pytest.raises(UserError, match=r"needs GPT-2's BPE tables encoder.json and vocab.bpe .*"
                                        r"openaipublic"):
        fw.load_bpe(tmp_path)
    (tmp_path / "encoder.json").write_bytes(official.files["encoder.json"].read_bytes())
    merges = official.files["vocab.bpe"].read_text().splitlines(keepends=True)
    (tmp_path / "vocab.bpe").write_text("".join(merges[:-5]))  # five merges short
    with pytest.raises(UserError, match="not a matching pair of GPT-2 BPE tables"):
        fw.load_bpe(tmp_path)


def test_shards_that_cannot_be_listed_fail_in_one_line(tmp_path, official):
    with FixtureServer() as server:  # answers 404 to the tree API
        m = fixture_manifest(tmp_path, official, server.url)
        with pytest.raises(UserError, match="could not list the FineWeb-Edu shards") as e:
            fw.download_shards(tmp_path, m, FAST)
    assert "\n" not in str(e.value) and "--raw-dir" in str(e.value)
    no_hub = dataclasses.replace(m, mirrors=(m.mirrors[0],))
    with pytest.raises(UserError, match="no Hugging Face mirror"):
        fw.download_shards(tmp_path, no_hub, FAST)


# The built-in manifest.

def test_the_builtin_manifest_lists_gpt2s_tables_with_tiktokens_hashes():
    from tiktoken_ext import openai_public

    m = manifest.load("finewebedu")
    assert m.implemented and [f.name for f in m.files] == list(fw.BPE_FILES)
    source = inspect.getsource(openai_public.gpt2)
    for f in m.files:
        assert f.sha256 in source and fw.BPE_URL + f.name in source
    assert m.mirrors == (fw.BPE_URL, "https://huggingface.co/datasets/HuggingFaceFW/fineweb-edu/"
                                     "resolve/main/sample/10BT/")
    assert fw.validation_size(10 ** 10) == fw.VALIDATION_TOKENS == 100_000 * 1025
