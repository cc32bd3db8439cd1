"""WMT preparation end to end, from archives in the official formats.

The five archives are written here as statmt.org ships them: ``.tgz`` files holding the
parallel text files at the paths TFDS's builders read (``training/europarl-v7.de-en.de`` ...,
``commoncrawl.de-en.en`` at the archive's root, ``dev/newstest2013.de``) and newstest2014 as
SGML (``dev/newstest2014-deen-src.de.sgm`` with ``<seg id="N">`` lines inside ``<doc>``
elements), beside members of other language pairs. They are served by a real HTTP server on
127.0.0.1 (tests/dataset_fixtures.py) from the mirrors' folders, with one transfer cut off,
and go through ``download`` and ``prepare`` with a manifest of the fixtures' own hashes. The
sentences carry the cases TFDS's reading decides: an empty side (left out), a ``\\r`` before
the newline of a text file (kept), CRLF line ends in SGML (not kept), non-ASCII text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import Downloaded, Fault, FixtureServer, write_manifest

from algoperf.datasets import content, fetch, manifest, operations, wmt
from algoperf.errors import UserError

FAST = fetch.Options(retries=3, backoff=0.01, timeout=10, jobs=2)
MIRRORS = {"training-parallel-europarl-v7.tgz": "/wmt13/",
           "training-parallel-commoncrawl.tgz": "/wmt13/",
           "training-parallel-nc-v12.tgz": "/wmt17/translation-task/",
           "rapid2016.tgz": "/wmt18/translation-task/", "dev.tgz": "/wmt19/translation-task/"}
MIRROR_ORDER = ("/wmt19/translation-task/", "/wmt18/translation-task/",
                "/wmt17/translation-task/", "/wmt13/")


def quiet(_: str) -> None:
    pass


def sentences(random: np.random.RandomState, count: int, words: list[str]) -> list[str]:
    return [" ".join(random.choice(words, random.randint(2, 14))) for _ in range(count)]


def make_pairs(seed: int = 0) -> dict[str, tuple[list[str], list[str]]]:
    """Every subset's German and English lines (as the files hold them, before TFDS's
    filter)."""
    random = np.random.RandomState(seed)
    german = ["".join(random.choice(list("abcdefghiklmnoprstuwzäöüß"), random.randint(2, 9)))
              for _ in range(400)]
    english = ["".join(random.choice(list("abcdefghijklmnopqrstuvwxyz"), random.randint(2, 9)))
               for _ in range(400)]
    counts = {"europarl_v7": 60, "commoncrawl": 50, "newscommentary_v12": 40,
              "rapid_2016": 30, "newstest2013": 12, "newstest2014": 10}
    pairs = {}
    for name, count in counts.items():
        de, en = sentences(random, count, german), sentences(random, count, english)
        pairs[name] = (de, en)
    pairs["europarl_v7"][0][5] = ""  # an empty side: TFDS leaves the pair out
    pairs["commoncrawl"][1][7] = ""
    pairs["commoncrawl"][0][3] += "\r"  # a carriage return TFDS keeps (bytes split at \n)
    pairs["newscommentary_v12"][0][2] = "Größe und Übermaß"
    pairs["newstest2014"][1][4] = "a <b>bold</b> claim"
    return pairs


def text_file(lines: list[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


def sgm_file(lines: list[str], lang: str) -> bytes:
    body = ['<srcset setid="newstest2014" srclang="any">', f'<doc sysid="ref" docid="d1" '
            f'genre="news" origlang="{lang}">', "<p>"]
    body += [f'<seg id="{i + 1}">{line}</seg>' for i, line in enumerate(lines)]
    body += ["</p>", "</doc>", "</srcset>"]
    return "".join(f"{line}\r\n" for line in body).encode()


def tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_archives(folder: Path, pairs: dict[str, tuple[list[str], list[str]]]
                   ) -> dict[str, Path]:
    """The five archives with the members TFDS reads, and others it does not."""
    members: dict[str, dict[str, bytes]] = {name: {} for name in MIRRORS}
    for subset in wmt.SUBSETS:
        de, en = pairs[subset.name]
        for member, lines, lang in zip(subset.members, (de, en), ("de", "en"), strict=True):
            data = sgm_file(lines, lang) if member.endswith(".sgm") else text_file(lines)
            members[subset.archive][member] = data
    members["training-parallel-europarl-v7.tgz"]["training/europarl-v7.fr-en.fr"] = b"salut\n"
    members["dev.tgz"]["dev/newstest2013.fr"] = b"bonjour\n"
    return {name: tgz(folder / name, files) for name, files in members.items()}


def expected_split(pairs, split: str) -> list[tuple[str, str]]:
    """TFDS's examples of ``split``: keys <subset>/0/<line>, empty sides left out, ordered by
    md5(split + key) (tensorflow_datasets.core.hashing.Hasher with the split as salt)."""
    examples = []
    for subset in (s for s in wmt.SUBSETS if s.split == split):
        for line, (de, en) in enumerate(zip(*pairs[subset.name], strict=True)):
            if de and en:
                examples.append((f"{subset.name}/0/{line}", (de, en)))
    return [pair for _, pair in sorted(
        examples, key=lambda e: int(hashlib.md5((split + e[0]).encode()).hexdigest(), 16))]


@pytest.fixture(scope="module")
def pairs():
    return make_pairs()


@pytest.fixture(scope="module")
def archives(tmp_path_factory, pairs) -> dict[str, Path]:
    return write_archives(tmp_path_factory.mktemp("statmt"), pairs)


def fixture_manifest(tmp_path: Path, archives: dict[str, Path], url: str) -> manifest.Manifest:
    return manifest.load_file(write_manifest(tmp_path / "wmt.json", "wmt", archives,
                                             [url + m for m in MIRROR_ORDER]))


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory, archives) -> Downloaded:
    """``download`` from the local mirrors, the commoncrawl transfer cut after 2,000 bytes."""
    tmp_path = tmp_path_factory.mktemp("download")
    with FixtureServer() as server:
        for name, path in archives.items():
            server.files[MIRRORS[name] + name] = path
        cut = MIRRORS["training-parallel-commoncrawl.tgz"] + "training-parallel-commoncrawl.tgz"
        server.add_fault(cut, Fault(cut_after=2000))
        data_dir = tmp_path / "data"
        result = operations.download(data_dir, "wmt", fixture_manifest(tmp_path, archives,
                                                                       server.url),
                                     options=FAST, echo=quiet)
        ranges = [r for _, _, r in server.requests_for(cut)]
    return Downloaded(data_dir, result, ranges)


def decoded(directory: Path, split: str, side: str) -> list[str]:
    tokenizer = wmt.load_tokenizer(directory)
    ids, offsets = wmt.read_side(directory, split, side)
    out = []
    for i in range(len(offsets) - 1):
        sentence = ids[offsets[i]:offsets[i + 1]].tolist()
        assert sentence[-1] == wmt.EOS_ID
        out.append(tokenizer.decode(sentence[:-1]))
    return out


# Download and the prepared layout.

def test_an_interrupted_download_resumes_and_the_dataset_is_prepared(downloaded):
    assert downloaded.ranges == [None, "bytes=2000-"]
    assert operations.status(downloaded.data_dir, "wmt").state == "prepared"
    assert content.read(downloaded.data_dir / "wmt").root == downloaded.result.root


def test_the_splits_are_tfds_pairs_in_tfds_order(downloaded, pairs):
    directory = downloaded.data_dir / "wmt"
    counts = wmt.num_sentences(directory)
    for split in wmt.SPLITS:
        expected = expected_split(pairs, split)
        assert counts[split] == len(expected)
        tokenizer = wmt.load_tokenizer(directory)
        for index, side in enumerate(wmt.SIDES):
            ids, offsets = wmt.read_side(directory, split, side)
            want = wmt.encode(tokenizer, [pair[index] for pair in expected])
            assert [ids[offsets[i]:offsets[i + 1]].tolist() for i in range(len(want))] == want
    assert counts == {"train": 60 - 1 + 50 - 1 + 40 + 30, "validation": 12, "test": 10}
    assert downloaded.result.source["sentences"] == counts


def test_sgml_segments_and_text_lines_are_read_as_tfds_reads_them(archives, pairs):
    splits = wmt.read_splits(archives["dev.tgz"].parent)
    assert splits == {split: expected_split(pairs, split) for split in wmt.SPLITS}
    test_english = [en for _, en in splits["test"]]
    assert "a <b>bold</b> claim" in test_english and not any("\r" in en for en in test_english)
    assert sum(de.endswith("\r") for de, _ in splits["train"]) == 1  # kept, as TFDS keeps it
    assert ("Größe und Übermaß", pairs["newscommentary_v12"][1][2]) in splits["train"]


def test_the_tokenizer_is_trained_as_algoperf_trains_it(downloaded, pairs, tmp_path):
    import sentencepiece as spm

    # AlgoPerf dumps de and en lines of the stored train split until 10^7 bytes, then trains
    # with these flags (the fixtures' small corpus needs the soft vocabulary limit).
    train = expected_split(pairs, "train")
    corpus = tmp_path / "chars.txt"
    corpus.write_bytes(b"".join(f"{de}\n{en}\n".encode() for de, en in train))
    spm.SentencePieceTrainer.Train(
        f"--input={corpus} --vocab_size=32000 --character_coverage=1.0 "
        f"--model_prefix={tmp_path / 'algoperf'} --model_type=unigram --hard_vocab_limit=false "
        "--minloglevel=2")
    theirs = spm.SentencePieceProcessor(model_file=str(tmp_path / "algoperf.model"))
    ours = wmt.load_tokenizer(downloaded.data_dir / "wmt")
    assert ours.get_piece_size() == theirs.get_piece_size() > 100
    assert [(ours.id_to_piece(k), ours.get_score(k)) for k in range(ours.get_piece_size())] == \
        [(theirs.id_to_piece(k), theirs.get_score(k)) for k in range(theirs.get_piece_size())]


def test_the_workload_reads_the_prepared_split(downloaded, pairs):
    from algoperf.workloads.wmt import workload as wmt_workload

    assert wmt_workload.VOCAB_SIZE == wmt.VOCAB_SIZE
    ids, offsets = wmt.read_side(downloaded.data_dir / "wmt", "validation", "inputs")
    assert ids.dtype == np.uint16 and len(offsets) == 13


# Bad input.

def test_an_archive_without_a_member_tfds_reads_is_refused(tmp_path, archives):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, path in archives.items():
        (raw / name).symlink_to(path)
    (raw / "rapid2016.tgz").unlink()
    tgz(raw / "rapid2016.tgz", {"rapid2016.de-en.de": b"hallo\n"})
    with pytest.raises(UserError, match=r"rapid2016.tgz holds no rapid2016.de-en.en") as e:
        wmt.read_splits(raw)
    assert "\n" not in str(e.value)


def test_files_of_different_lengths_are_refused(tmp_path, archives):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, path in archives.items():
        (raw / name).symlink_to(path)
    (raw / "rapid2016.tgz").unlink()
    tgz(raw / "rapid2016.tgz", {"rapid2016.de-en.de": b"eins\nzwei\n",
                                "rapid2016.de-en.en": b"one\n"})
    with pytest.raises(UserError, match="has 3 lines and rapid2016.de-en.en 2"):
        wmt.read_splits(raw)


def test_a_missing_archive_says_where_to_get_it(tmp_path):
    with pytest.raises(UserError, match="wmt needs training-parallel-europarl-v7.tgz in"):
        wmt.read_splits(tmp_path)


def test_the_builtin_manifest_checks_tfds_counts(tmp_path, archives):
    builtin = dataclasses.replace(fixture_manifest(tmp_path, archives, "http://127.0.0.1:9"),
                                  builtin=True)
    raw = archives["dev.tgz"].parent
    with pytest.raises(UserError, match="TFDS's wmt17/wmt14 de-en have"):
        wmt.prepare(raw, tmp_path / "out", builtin)


def test_the_builtin_manifest_lists_tfds_archives_with_its_checksums():
    m = manifest.load("wmt")
    assert [f.name for f in m.files] == list(dict.fromkeys(s.archive for s in wmt.SUBSETS))
    raw = json.loads((Path(wmt.__file__).parent / "manifests" / "wmt.json").read_text())
    urls = {f["name"]: f["url"] for f in raw["files"]}
    assert urls["dev.tgz"] == "http://data.statmt.org/wmt19/translation-task/dev.tgz"
    assert all(url.removesuffix(name) in m.mirrors for name, url in urls.items())
    assert m.download_bytes == 1_944_240_362


# Resuming a preparation.

def prepared_files(directory: Path) -> dict[str, object]:
    """Each file's bytes; the tokeniser as its pieces and scores (the model file also records
    the temporary path of the corpus it was trained from)."""
    files: dict[str, object] = {p.name: p.read_bytes() for p in sorted(directory.iterdir())}
    tokenizer = wmt.load_tokenizer(directory)
    files[wmt.MODEL_FILE] = [(tokenizer.id_to_piece(i), tokenizer.get_score(i))
                             for i in range(tokenizer.get_piece_size())]
    return files


def test_an_interrupted_preparation_resumes_after_its_last_finished_stage(
        tmp_path, archives):
    m = fixture_manifest(tmp_path, archives, "http://127.0.0.1:9")
    raw = archives["dev.tgz"].parent
    fresh = tmp_path / "fresh"
    wmt.prepare(raw, fresh, m, work=tmp_path / "fresh.work")
    assert not (tmp_path / "fresh.work").exists()  # removed once the layout is complete

    work, out = tmp_path / "resumed.work", tmp_path / "resumed"
    blocker = work / "validation.inputs.ids.npy"
    blocker.mkdir(parents=True)  # the validation split cannot be written: the run fails there
    with pytest.raises(OSError):
        wmt.prepare(raw, out, m, work=work)
    finished = {p.name for p in work.glob("*.done")}
    assert finished == {"tokenizer.done", "train.inputs.done", "train.targets.done"}
    kept = {name: (work / name).stat().st_mtime_ns
            for name in (wmt.MODEL_FILE, "train.inputs.ids.npy", "train.targets.offsets.npy")}

    blocker.rmdir()
    wmt.prepare(raw, out, m, work=work)
    assert prepared_files(out) == prepared_files(fresh)
    assert not work.exists()
    # The finished stages were kept, not redone: their files moved, unchanged, into out.
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept


def test_a_finished_stage_of_other_inputs_is_redone(tmp_path):
    def splits(seed: int) -> dict[str, list[tuple[str, str]]]:
        random = np.random.RandomState(seed)
        words = ["ein", "zwei", "drei", "vier", "haus", "baum", "one", "two", "tree"]
        return {split: list(zip(sentences(random, count, words), sentences(random, count, words),
                                strict=True))
                for split, count in (("train", 80), ("validation", 10), ("test", 10))}

    work = tmp_path / "work"
    blocker = work / "test.inputs.ids.npy"
    blocker.mkdir(parents=True)
    with pytest.raises(OSError):
        wmt.prepare_pairs(splits(0), tmp_path / "first", vocab_size=64, work=work,
                          hard_vocab_limit=False)
    blocker.rmdir()
    wmt.prepare_pairs(splits(1), tmp_path / "other", vocab_size=64, work=work,
                      hard_vocab_limit=False)
    wmt.prepare_pairs(splits(1), tmp_path / "fresh", vocab_size=64, hard_vocab_limit=False)
    assert prepared_files(tmp_path / "other") == prepared_files(tmp_path / "fresh")
