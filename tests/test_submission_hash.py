"""What the submission hash covers (docs/verify.md): the submission file alone, or its whole
folder when that folder is the submission's package (an ``__init__.py``, or an entry file
``submission.py`` / ``submission_<framework>.py``). Real files; the last test runs a trial
through the CLI and re-hashes it with `algoperf verify --submission`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from algoperf.errors import UserError
from algoperf.submission import MAX_PACKAGE_FILES, source_digest, source_files

ROOT = Path(__file__).resolve().parent.parent
NADAMW = ROOT / "submissions" / "nadamw"


def crowd(folder: Path, files: int = 5000, big_mb: int = 64) -> None:
    """Unrelated siblings: many small files in nested folders and one big text file."""
    for i in range(files):
        sub = folder / f"other_{i % 50}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.py").write_text(f"x = {i}\n" * 100)
    with open(folder / "big.txt", "wb") as f:
        f.write(b"\0" * (big_mb << 20))


def test_a_file_beside_unrelated_big_siblings_hashes_only_itself(tmp_path):
    file = tmp_path / "my_algorithm.py"
    file.write_bytes((NADAMW / "submission_pytorch.py").read_bytes())
    crowd(tmp_path)
    digest = source_digest(file)
    assert source_files(file) == [file]  # the crowd is never walked (benchmarks/submission_hash.py)
    sha, size = hashlib.sha256(file.read_bytes()).hexdigest(), file.stat().st_size
    listing = f"{sha}  {size}  my_algorithm.py\n"
    assert digest == hashlib.sha256(listing.encode()).hexdigest()  # sha256sum-style listing
    (tmp_path / "other_3" / "f3.py").write_text("changed = True\n")
    (tmp_path / "new.json").write_text("{}")
    assert source_digest(file) == digest


@pytest.mark.parametrize("marker", ["__init__.py", "submission.py"])
def test_a_package_folders_helper_change_changes_the_hash(tmp_path, marker):
    package = tmp_path / "mysub"
    (package / "nested").mkdir(parents=True)
    (package / marker).write_text("from . import muon\n" if marker == "__init__.py" else "")
    (package / "algorithm.py").write_text("from muon import step\n")
    (package / "muon.py").write_text("def step(x):\n    return x\n")
    (package / "nested" / "util.py").write_text("Y = 1\n")
    (package / "tuning_search_space.json").write_text("{}")
    submission = package / ("algorithm.py" if marker == "__init__.py" else marker)
    before = source_digest(submission)
    expected = [marker, "algorithm.py", "muon.py", "nested/util.py", "tuning_search_space.json"]
    assert [str(p.relative_to(package)) for p in source_files(submission)] == sorted(
        expected, key=lambda name: Path(name).parts)
    for ignored in (package / "__pycache__" / "muon.cpython-311.pyc",
                    package / ".ipynb_checkpoints" / "muon.py", package / "notes.md"):
        ignored.parent.mkdir(exist_ok=True)
        ignored.write_text("not part of the submission")
    assert source_digest(submission) == before
    (package / "muon.py").write_text("def step(x):\n    return 2 * x\n")
    assert source_digest(submission) != before
    changed = source_digest(submission)
    (package / "nested" / "util.py").write_text("Y = 2\n")
    assert source_digest(submission) != changed


def test_reference_submissions_hash_their_folder_the_same_for_both_frameworks():
    for folder in sorted(p for p in (ROOT / "submissions").iterdir() if p.is_dir()):
        digests = {source_digest(f) for f in folder.glob("submission_*.py")}
        assert len(digests) == 1, folder
        assert folder / "submission_jax.py" in source_files(folder / "submission_pytorch.py")


def test_a_crowded_folder_that_looks_like_a_package_is_one_line(tmp_path):
    (tmp_path / "submission.py").write_text("")
    for i in range(MAX_PACKAGE_FILES + 1):
        (tmp_path / f"f{i}").touch()
    with pytest.raises(UserError) as e:
        source_digest(tmp_path / "submission.py")
    assert str(e.value) == (f"submission folder {tmp_path} holds more than {MAX_PACKAGE_FILES} "
                            "files, so it is not the submission's own folder; move "
                            "submission.py into a folder of its own (docs/verify.md: what the "
                            "submission hash covers)")


def test_verify_rehashes_the_submission_as_the_run_did_and_ignores_siblings(tmp_path):
    folder = tmp_path / "scratch"
    folder.mkdir()
    file = folder / "my_nadamw.py"
    file.write_bytes((NADAMW / "submission_pytorch.py").read_bytes())
    (folder / "unrelated.py").write_text("A = 1\n")
    run = subprocess.run([sys.executable, "-m", "algoperf", "run", "--submission", str(file),
                          "--workload", "digits", "--framework", "pytorch",
                          "--tuning-search-space", str(NADAMW / "tuning_search_space.json"),
                          "--num-tuning-trials", "1", "--max-global-steps", "3", "--seed", "1",
                          "--experiment-dir", str(tmp_path / "exp")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    (trial,) = (tmp_path / "exp").rglob("trial_1")

    def verify() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "algoperf", "verify", str(trial),
                               "--submission", str(file), "--out", str(tmp_path / "v")],
                              capture_output=True, text=True, timeout=600)

    def submission_check() -> dict:
        found = []

        def walk(node):
            if isinstance(node, dict):
                if node.get("name") == "submission" and "status" in node:
                    found.append(node)
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(json.loads((tmp_path / "v" / "certificate.intoto.json").read_text()))
        (check,) = found
        return check

    (folder / "unrelated.py").write_text("A = 2\n")  # a sibling changes after the run
    same = verify()
    assert same.returncode == 2, same.stdout[-3000:]  # unsigned: not certifiable, no failure
    assert submission_check()["status"] == "pass"
    assert "matches --submission" in submission_check()["summary"]
    with open(file, "a") as f:
        f.write("\n# edited after the run\n")
    edited = verify()
    assert edited.returncode == 1
    assert submission_check()["status"] == "fail"
    assert "is not the given submission's" in json.dumps(submission_check()["problems"])
