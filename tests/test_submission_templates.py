"""The submission templates in docs/templates/sgd: each trains on digits through `algoperf run`
in its framework, and docs/submissions.md shows every template file verbatim (so the guide
cannot drift from code that runs).

The guide marks each copied file with ``<!-- file: templates/sgd/NAME -->`` on the line before
its fenced block.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from algoperf.logs import events as ev
from algoperf.logs.measurements import read_measurements

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TEMPLATES = DOCS / "templates" / "sgd"
GUIDE = DOCS / "submissions.md"
STEPS = 5
_BLOCK = re.compile(r"^<!-- file: (?P<path>\S+) -->\n```[a-z]*\n(?P<code>.*?)^```$",
                    re.MULTILINE | re.DOTALL)


def guide_blocks() -> dict[str, str]:
    """The marked code blocks of docs/submissions.md, by the path they copy (relative to docs/)."""
    blocks: dict[str, str] = {}
    for match in _BLOCK.finditer(GUIDE.read_text()):
        assert match["path"] not in blocks, f"{match['path']} is shown twice in {GUIDE.name}"
        blocks[match["path"]] = match["code"]
    return blocks


def test_guide_shows_every_template_file_exactly():
    files = {p.relative_to(DOCS).as_posix(): p.read_text()
             for p in sorted(TEMPLATES.iterdir()) if p.is_file()}
    blocks = guide_blocks()
    assert sorted(blocks) == sorted(files)
    for path, text in files.items():
        assert blocks[path] == text, f"docs/submissions.md's copy of {path} differs from the file"


@pytest.mark.parametrize("framework", ["jax", "pytorch"])
def test_template_trains_on_digits_through_algoperf_run(framework, tmp_path):
    # Run from tmp_path: the checkout's folders (datasets/) never shadow installed packages.
    done = subprocess.run(
        [sys.executable, "-m", "algoperf", "run", "--submission", str(TEMPLATES),
         "--workload", "digits", "--framework", framework,
         "--tuning-search-space", str(TEMPLATES / "tuning_search_space.json"),
         "--num-tuning-trials", "1", "--seed", "0", "--max-global-steps", str(STEPS),
         "--experiment-dir", str(tmp_path / "runs"), "--no-save-checkpoints"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    trial = tmp_path / "runs" / "sgd" / "study_0" / f"digits_{framework}" / "trial_1"
    end = ev.read_events(trial / ev.EVENTS_FILENAME)[-1]
    assert end["type"] == ev.RUN_END
    assert (end["data"]["status"], end["data"]["reason"]) == ("completed", "max_steps")
    assert end["data"]["global_step"] == STEPS
    evals = read_measurements(trial / "eval_measurements.csv")
    assert int(evals[-1]["global_step"]) == STEPS
    # SGD learns: the validation loss after the last step is below the one after the first.
    assert float(evals[-1]["validation/loss"]) < float(evals[0]["validation/loss"])
