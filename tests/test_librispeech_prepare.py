"""LibriSpeech preparation end to end, from archives in the official format.

The six archives are written here as OpenSLR ships them: ``<subset>.tar.gz`` holding
``LibriSpeech/<subset>/<speaker>/<chapter>/`` folders of 16 kHz mono 16-bit FLAC files
(written with soundfile) and a ``<speaker>-<chapter>.trans.txt``, with the README files beside
the subset. They are served by a real HTTP server on 127.0.0.1 (tests/dataset_fixtures.py) and
go through ``download`` and ``prepare`` as the real ones would; as in tests/test_datasets.py,
each test passes a manifest of the fixtures' own hashes. train-clean-100 carries a few long
transcripts (dropped by the length filter, but part of the tokenizer's training text) so that
a 1,024-piece unigram model can be trained on it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from dataset_fixtures import Downloaded, Fault, FixtureServer, write_manifest

from algoperf.datasets import content, fetch, manifest, operations
from algoperf.datasets import librispeech as ls
from algoperf.errors import UserError
from algoperf.workloads.librispeech_conformer import input_pipeline

FAST = fetch.Options(retries=3, backoff=0.01, timeout=10, jobs=3)
# subset -> (speaker, chapter, utterances)
CHAPTERS = {
    "train-clean-100": [(19, 198, 5), (19, 227, 4), (26, 495, 4)],
    "train-clean-360": [(100, 121669, 4)],
    "train-other-500": [(20, 205, 3)],
    "dev-clean": [(84, 121123, 3), (174, 50561, 2)],
    "dev-other": [(116, 288045, 3)],
    "test-clean": [(61, 70968, 3)],
}
# train-clean-100's long transcripts (4,000 characters): dropped, but the tokenizer's text.
LONG_TRANSCRIPTS = ("19-198-0003", "19-198-0004", "19-227-0003", "26-495-0003")
# Utterances at the limits (256 characters, 320,000 samples) and just over them.
EXACT_LIMITS = {"train-clean-360": "100-121669-0000", "dev-other": "116-288045-0000"}
OVER_LIMITS = {"train-clean-360": "100-121669-0001", "dev-other": "116-288045-0001"}


def quiet(_: str) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class Utterance:
    subset: str
    audio: np.ndarray
    transcript: str  # as normalised: the line stripped, after the first space
    line: str  # the line in .trans.txt


def flac(samples: np.ndarray, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    data = samples if channels == 1 else np.stack([samples] * channels, axis=1)
    soundfile.write(buffer, data, ls.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def make_utterances(seed: int = 0) -> dict[str, Utterance]:
    """Every fixture utterance by id: noise of 800-4,000 samples with a transcript of random
    words, the long transcripts, and the limit cases."""
    random = np.random.RandomState(seed)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'"))
    words = ["".join(random.choice(letters, random.randint(3, 10))) for _ in range(3000)]

    def text(count: int, characters: int | None = None) -> str:
        words_text = " ".join(random.choice(words, count))[:characters]
        return words_text[:-1] + "A" if words_text.endswith(" ") else words_text

    special = {
        EXACT_LIMITS["train-clean-360"]: (np.zeros(900), text(80, 256)),
        OVER_LIMITS["train-clean-360"]: (np.zeros(900), text(80, 257)),
        EXACT_LIMITS["dev-other"]: (random.normal(0, 50, 320_000), "HI"),
        OVER_LIMITS["dev-other"]: (random.normal(0, 50, 320_001), "HO")}
    utterances = {}
    for subset, chapters in CHAPTERS.items():
        for speaker, chapter, count in chapters:
            for n in range(count):
                utterance_id = f"{speaker}-{chapter}-{n:04d}"
                audio = random.normal(0, 2000, random.randint(800, 4000))
                transcript = text(600, 4000) if utterance_id in LONG_TRANSCRIPTS \
                    else text(random.randint(2, 12))
                audio, transcript = special.get(utterance_id, (audio, transcript))
                samples = np.clip(np.round(audio), -32768, 32767).astype(np.int16)
                line = f"{utterance_id} {transcript}" + ("  \t" if n % 2 else "")
                utterances[utterance_id] = Utterance(subset, samples, transcript, line)
    return utterances


def tar_gz(path: Path, members: list[tuple[str, bytes | None]]) -> None:
    """Writes a tar.gz of (name, bytes) members; bytes None is a directory."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def write_archive(folder: Path, subset: str, utterances: dict[str, Utterance],
                  stereo: str | None = None) -> Path:
    """The official archive of ``subset``: the transcript first in some chapters, last in
    others; utterance ``stereo`` written with two channels."""
    root = f"{ls.ARCHIVE_ROOT}/{subset}"
    members: list[tuple[str, bytes | None]] = [
        (ls.ARCHIVE_ROOT, None), (f"{ls.ARCHIVE_ROOT}/README.TXT", b"LibriSpeech fixture\n"),
        (f"{ls.ARCHIVE_ROOT}/SPEAKERS.TXT", b";ID |SEX\n"), (root, None)]
    for k, (speaker, chapter, _) in enumerate(CHAPTERS[subset]):
        folder_name = f"{root}/{speaker}/{chapter}"
        ids = sorted(i for i in utterances if i.startswith(f"{speaker}-{chapter}-"))
        trans = (f"{folder_name}/{speaker}-{chapter}.trans.txt",
                 "".join(f"{utterances[i].line}\n" for i in ids).encode())
        audio = [(f"{folder_name}/{i}.flac", flac(utterances[i].audio, 2 if i == stereo else 1))
                 for i in reversed(ids)]
        members += [(f"{root}/{speaker}", None), (folder_name, None)]
        members += [trans, *audio] if k % 2 == 0 else [*audio, trans]
    path = folder / ls.archive_name(subset)
    tar_gz(path, members)
    return path


@pytest.fixture(scope="module")
def utterances() -> dict[str, Utterance]:
    return make_utterances()


@pytest.fixture(scope="module")
def archives(tmp_path_factory, utterances) -> Path:
    folder = tmp_path_factory.mktemp("openslr")
    for subset in ls.SUBSETS:
        write_archive(folder, subset, {i: u for i, u in utterances.items() if u.subset == subset})
    return folder


def archive_files(folder: Path) -> dict[str, Path]:
    return {ls.archive_name(subset): folder / ls.archive_name(subset) for subset in ls.SUBSETS}


def fixture_manifest(tmp_path: Path, folder: Path, mirrors: list[str] = (), **extra):
    return manifest.load_file(write_manifest(tmp_path / "librispeech-fixture.json", "librispeech",
                                             archive_files(folder), list(mirrors), **extra))


def expected_ids(utterances: dict[str, Utterance], split: str) -> list[str]:
    """The ids AlgoPerf keeps in ``split``, in the prepared order."""
    ids = []
    for subset in (s for s, target in ls.SUBSETS.items() if target == split):
        ids += sorted((i for i, u in utterances.items() if u.subset == subset
                       and len(u.transcript) <= ls.MAX_TRANSCRIPT_CHARACTERS
                       and len(u.audio) <= ls.MAX_AUDIO_SAMPLES), key=ls.utterance_order)
    return ids


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory, archives) -> Downloaded:
    """``download`` from the local server, with the train-clean-100 transfer cut off after
    5,000 bytes."""
    tmp_path = tmp_path_factory.mktemp("download")
    with FixtureServer() as server:
        for name, path in archive_files(archives).items():
            server.files[f"/resources/12/{name}"] = path
        server.add_fault("/resources/12/train-clean-100.tar.gz", Fault(cut_after=5000))
        m = fixture_manifest(tmp_path, archives, [f"{server.url}/resources/12/"])
        data_dir = tmp_path / "data"
        result = operations.download(data_dir, "librispeech", m, options=FAST, echo=quiet)
        ranges = [r for _, _, r in server.requests_for("/resources/12/train-clean-100.tar.gz")]
    return Downloaded(data_dir, result, ranges)


# Download and the prepared layout.

def test_an_interrupted_download_resumes_and_the_dataset_is_prepared(downloaded):
    assert downloaded.ranges == [None, "bytes=5000-"]
    directory = downloaded.data_dir / "librispeech"
    assert operations.status(downloaded.data_dir, "librispeech").state == "prepared"
    assert content.read(directory).root == downloaded.result.root
    assert not list(downloaded.data_dir.glob(".librispeech.*work*"))


def test_the_splits_hold_algoperfs_archives_in_order_with_the_audio_unchanged(downloaded,
                                                                             utterances):
    directory = downloaded.data_dir / "librispeech"
    for split in ls.SPLITS:
        ids = ls.split_ids(directory, split)
        assert ids == expected_ids(utterances, split)
        for utterance_id in ids:
            audio, _ = ls.read_utterance(directory, split, utterance_id)
            assert audio.dtype == np.int16
            np.testing.assert_array_equal(audio, utterances[utterance_id].audio)
        files = sorted(p.name for p in (directory / split).iterdir())
        assert files == sorted(f"{i}_{kind}.npy" for i in ids for kind in ("audio", "targets"))
    assert set(ls.split_ids(directory, "train")) >= {"19-198-0000", "100-121669-0002",
                                                      "20-205-0000"}
    assert downloaded.result.source["examples"] == {
        split: len(expected_ids(utterances, split)) for split in ls.SPLITS}


def test_the_length_filter_keeps_256_characters_and_320000_samples_and_no_more(downloaded,
                                                                              utterances):
    directory = downloaded.data_dir / "librispeech"
    train, validation = ls.split_ids(directory, "train"), ls.split_ids(directory, "validation")
    assert len(utterances[EXACT_LIMITS["train-clean-360"]].transcript) == 256
    assert len(utterances[OVER_LIMITS["train-clean-360"]].transcript) == 257
    assert EXACT_LIMITS["train-clean-360"] in train and OVER_LIMITS["train-clean-360"] not in train
    assert EXACT_LIMITS["dev-other"] in validation and OVER_LIMITS["dev-other"] not in validation
    assert not set(LONG_TRANSCRIPTS) & set(train)
    assert ls.longest_utterance(directory) == ls.MAX_AUDIO_SAMPLES
    assert downloaded.result.source["utterances_read"] == {
        subset: sum(u.subset == subset for u in utterances.values()) for subset in ls.SUBSETS}


def test_targets_are_ids_of_a_1024_piece_tokenizer_that_decode_to_the_transcripts(downloaded,
                                                                                  utterances):
    directory = downloaded.data_dir / "librispeech"
    tokenizer = ls.load_tokenizer(directory)
    assert tokenizer.get_piece_size() == ls.VOCAB_SIZE
    for split in ls.SPLITS:
        for utterance_id in ls.split_ids(directory, split):
            _, targets = ls.read_utterance(directory, split, utterance_id)
            assert targets.dtype == np.int32 and targets[-1] == tokenizer.eos_id()
            assert tokenizer.decode(targets.tolist()) == utterances[utterance_id].transcript
            assert tokenizer.unk_id() not in targets
    with open(directory / "test.csv") as f:
        rows = f.read().splitlines()
    first = rows[1].split(",")
    _, targets = ls.read_utterance(directory, "test", first[0])
    assert rows[0] == "id,num_samples,num_tokens" and int(first[2]) == len(targets)
    assert int(first[1]) == len(utterances[first[0]].audio)
    source = downloaded.result.source["tokenizer"]
    assert source == {"trained_on": "train-clean-100", "transcripts": 13, "vocab_size": 1024}


def test_the_tokenizer_is_trained_on_train_clean_100_with_algoperfs_options(downloaded,
                                                                           utterances, tmp_path):
    import sentencepiece as spm

    text = [utterances[i].transcript for i in sorted(
        (i for i, u in utterances.items() if u.subset == "train-clean-100"),
        key=ls.utterance_order)]
    model = ls.train_tokenizer(text)
    assert (downloaded.data_dir / "librispeech" / ls.TOKENIZER_FILE).read_bytes() == model
    # AlgoPerf trains from a file of the transcripts, one per line, with these flags.
    (tmp_path / "chars.txt").write_text("".join(f"{t}\n" for t in text))
    spm.SentencePieceTrainer.Train(
        f"--input={tmp_path / 'chars.txt'} --vocab_size=1024 --character_coverage=1.0 "
        f"--model_prefix={tmp_path / 'algoperf'} --model_type=unigram --minloglevel=2")
    theirs = spm.SentencePieceProcessor(model_file=str(tmp_path / "algoperf.model"))
    ours = ls.load_tokenizer(downloaded.data_dir / "librispeech")
    assert [(ours.id_to_piece(k), ours.get_score(k)) for k in range(ls.VOCAB_SIZE)] == \
        [(theirs.id_to_piece(k), theirs.get_score(k)) for k in range(ls.VOCAB_SIZE)]
    # AlgoPerf reads the transcripts in directory order; the model does not depend on it.
    shuffled = list(np.random.RandomState(1).permutation(text))
    assert shuffled != text and ls.train_tokenizer(shuffled) == model


def test_the_input_pipeline_reads_the_prepared_validation_split(downloaded, utterances):
    directory = downloaded.data_dir / "librispeech"
    ids = ls.split_ids(directory, "validation")
    (batch,) = list(input_pipeline.eval_batches(directory, "validation", ids, len(ids),
                                                ls.MAX_AUDIO_SAMPLES, False))
    audio, paddings = batch["inputs"]
    row = ids.index(EXACT_LIMITS["dev-other"])
    np.testing.assert_array_equal(audio[row], utterances[ids[row]].audio)
    assert not paddings[row].any()


def test_cli_download_from_a_mirror_gives_the_same_root(tmp_path, downloaded, archives):
    with FixtureServer() as server:
        for name, path in archive_files(archives).items():
            server.files[f"/mirror/{name}"] = path
        fixture = write_manifest(tmp_path / "m.json", "librispeech", archive_files(archives),
                                 [f"{server.url}/mirror/"])
        done = subprocess.run([sys.executable, "-m", "algoperf", "datasets", "download",
                               "librispeech", "--data-dir", str(tmp_path / "d"), "--manifest",
                               str(fixture), "--delete-downloads"], capture_output=True,
                              text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "dev-other.tar.gz: 3 utterances, 2 kept" in done.stderr
    assert content.read(tmp_path / "d" / "librispeech").root == downloaded.result.root
    assert not (tmp_path / "d" / "downloads" / "librispeech").exists()


# Interruptions and bad input.

def test_an_interrupted_preparation_resumes_with_the_chapters_converted_before(
        tmp_path, archives, utterances, downloaded, capfd):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name, path in archive_files(archives).items():
        (broken / name).write_bytes(path.read_bytes())
    test_clean = {i: u for i, u in utterances.items() if u.subset == "test-clean"}
    write_archive(broken, "test-clean", test_clean, stereo="61-70968-0001")
    data_dir = tmp_path / "data"
    with pytest.raises(UserError, match="2 channel") as error:
        operations.prepare(data_dir, "librispeech", fixture_manifest(tmp_path, broken),
                           raw_dir=broken, echo=quiet)
    assert "\n" not in str(error.value)
    assert not (data_dir / "librispeech").exists()
    assert (data_dir / ".librispeech.work" / "train-clean-100.journal").is_file()
    capfd.readouterr()
    (broken / "test-clean.tar.gz").unlink()  # replaced by the good archive: a new file
    (broken / "test-clean.tar.gz").write_bytes((archives / "test-clean.tar.gz").read_bytes())
    resumed = operations.prepare(data_dir, "librispeech", fixture_manifest(tmp_path, broken),
                                 raw_dir=broken, echo=quiet)
    err = capfd.readouterr().err
    assert "train-clean-100.tar.gz: 13 utterances, 9 kept, 3 chapters converted before" in err
    assert "test-clean.tar.gz: 3 utterances, 3 kept\n" in err
    assert resumed.root == downloaded.result.root
    assert not (data_dir / ".librispeech.work").exists()


def test_work_left_by_another_archive_file_is_redone(tmp_path, archives, downloaded):
    work = tmp_path / "data" / ".librispeech.work"
    (work / "validation").mkdir(parents=True)
    (work / "dev-clean.journal").write_text(
        json.dumps({"archive": "dev-clean.tar.gz", "sha256": None, "file": [0, 0, 0, 0]})
        + '\n{"chapter": "84/121123", "kept": [["84-121123-0000", 3]]}\n')
    (work / "validation" / "84-121123-0000_audio.npy").write_bytes(b"stale")
    (work / "validation" / "84-121123-0099_audio.npy").write_bytes(b"stale")
    result = operations.prepare(tmp_path / "data", "librispeech",
                                fixture_manifest(tmp_path, archives), raw_dir=archives,
                                echo=quiet)
    assert result.root == downloaded.result.root


def test_the_builtin_manifest_checks_the_published_utterance_counts(tmp_path, archives):
    builtin = dataclasses.replace(fixture_manifest(tmp_path, archives), builtin=True)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match=r"train-clean-100.tar.gz holds 13 utterances, the "
                                        r"published count is 28,539"):
        ls.prepare(archives, out, builtin, workers=1)


def test_an_archive_of_another_subset_is_refused(tmp_path, archives):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, path in archive_files(archives).items():
        (raw / name).symlink_to(path)
    (raw / "train-clean-100.tar.gz").unlink()
    (raw / "train-clean-100.tar.gz").symlink_to(archives / "dev-clean.tar.gz")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match="not the official train-clean-100 archive"):
        ls.prepare(raw, out, fixture_manifest(tmp_path, archives), workers=1)


def test_a_missing_archive_says_where_to_get_it(tmp_path, archives):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "dev-clean.tar.gz").symlink_to(archives / "dev-clean.tar.gz")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match="needs train-clean-100.tar.gz in .*openslr.org/12"):
        ls.prepare(raw, out, fixture_manifest(tmp_path, archives))


def test_free_disk_space_is_checked_before_anything_is_written(tmp_path, archives):
    m = fixture_manifest(tmp_path, archives, prepared_bytes=10**18)
    with pytest.raises(UserError, match="not enough free disk space"):
        operations.prepare(tmp_path / "data", "librispeech", m, raw_dir=archives, echo=quiet)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".librispeech.lock"]


# AlgoPerf's text handling and the built-in manifest.

def test_transcripts_are_the_stripped_line_after_the_first_space():
    text = "19-198-0000 HELLO  WORLD \t\r\n\n19-198-0001 IT'S\n"
    assert ls.parse_transcripts(text, "t") == {"19-198-0000": "HELLO  WORLD",
                                               "19-198-0001": "IT'S"}
    for bad in ("19-198-0000\n", "hello WORLD\n", "19-198-0000 A\n19-198-0000 B\n"):
        with pytest.raises(UserError, match="line [12] of t"):
            ls.parse_transcripts(bad, "t")


def test_the_tokenizer_text_stops_before_ten_million_characters():
    assert ls.tokenizer_transcripts(["ABC", "DE", "F"], max_characters=7) == ["ABC", "DE"]
    assert ls.tokenizer_transcripts(["ABC", "DE", "F"], max_characters=6) == ["ABC"]
    assert ls.TOKENIZER_MAX_CHARACTERS == 10**7


def test_the_builtin_manifest_lists_the_six_openslr_archives_with_published_digests():
    m = manifest.load("librispeech")
    assert m.implemented and [f.name for f in m.files] == [ls.archive_name(s) for s in ls.SUBSETS]
    assert m.download_bytes == 61_029_185_188
    assert all(u.startswith("https://") and u.endswith("/resources/12/") for u in m.mirrors)
    raw = json.loads((Path(ls.__file__).parent / "manifests" / "librispeech.json").read_text())
    md5 = {f["name"]: f["md5"] for f in raw["files"]}
    assert md5["dev-clean.tar.gz"] == "42e2234ba48799c1f50f24a7926300a1"  # OpenSLR's md5sum.txt
    assert sum(ls.PUBLISHED_UTTERANCES.values()) == 281_241 + 5_567 + 2_620
