"""algoperf report: the HTML leaderboard, opened in a real headless browser (Debian's chromium
driven by chromedriver), on AlgoPerf's published v0.6 logs and on signed runs of our own.

The browser must load each page without console errors and render every plot; a full-page
screenshot is taken. The page's numbers are checked against the published scores, the times
AlgoPerf's own scoring code computes, and the measurement records of our runs.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ALGOPERF_LOGS
from test_scoring_v06 import ALGOPERF_TIMES, PUBLISHED

from algoperf.cli import cli
from algoperf.hardware import HOST_SAMPLES_ENV, HostSamples
from algoperf.logs import quality
from algoperf.scoring import score
from algoperf.scoring.curves import workload_curves
from algoperf.scoring.html import write_report
from algoperf.scoring.plots import curves_figure, profile_figure
from algoperf.verification.keys import generate_keypair, load_signing_key
from algoperf.verification.seal import seal_trial
from algoperf.verification.witness import Witness
from algoperf.workloads import registry

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "submissions"
V06 = ALGOPERF_LOGS / "v0.6"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WIDTH = 1400

needs_logs = pytest.mark.skipif(not V06.is_dir(), reason=f"AlgoPerf v0.6 logs not at {V06}")


@pytest.fixture(scope="module")
def browser():
    """Headless chromium under chromedriver, with the console log kept."""
    if not (CHROMIUM and CHROMEDRIVER):
        reason = "chromium and chromedriver not installed (.ci/browser-up installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs a browser: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(driver, page: Path) -> list[dict]:
    """Loads ``page`` and returns the console's errors (SEVERE entries)."""
    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(page.as_uri())
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def rendered_images(driver) -> list[dict]:
    """Every <img> as the browser laid it out: decoded size and on-page size."""
    return driver.execute_script(
        "return [...document.images].map(i => ({alt: i.alt, complete: i.complete, "
        "natural: [i.naturalWidth, i.naturalHeight], "
        "box: [i.getBoundingClientRect().width, i.getBoundingClientRect().height]}));")


def full_page_screenshot(driver, path: Path) -> np.ndarray:
    """The whole page (beyond the viewport) as a PNG at ``path``; returns its pixels."""
    from PIL import Image

    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"))


def texts(driver, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def cell(driver, css: str) -> str:
    found = texts(driver, css)
    assert len(found) == 1, (css, found)
    return found[0]


def assert_page_renders(driver, page: Path, screenshot: Path, plots: int) -> None:
    """No console error, ``plots`` images decoded and laid out, a screenshot that is a page."""
    assert open_page(driver, page) == []
    images = rendered_images(driver)
    assert len(images) == plots
    for image in images:
        assert image["complete"] and min(image["natural"]) > 0, image
        assert min(image["box"]) > 100, image
    pixels = full_page_screenshot(driver, screenshot)
    assert pixels.shape[1] == WIDTH and pixels.shape[0] > 1000
    colours = np.unique(pixels.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 200  # text, tables and plots, not a blank or error page


# --- AlgoPerf's published v0.6 leaderboards ---------------------------------------------------


@pytest.fixture(scope="module")
def v06_page(tmp_path_factory) -> Path:
    return write_report([V06], tmp_path_factory.mktemp("v06"), bootstrap_replicates=200)


@needs_logs
def test_v06_page_loads_without_console_errors_and_renders_every_plot(browser, v06_page,
                                                                      tmp_path):
    # Two leaderboards (external and self tuning): a profile each, a curve plot per workload.
    assert_page_renders(browser, v06_page, tmp_path / "v06.png", plots=2 + 8 + 8)


@needs_logs
def test_v06_page_needs_no_network(browser, v06_page):
    open_page(browser, v06_page)
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);")
    assert all(name.startswith("data:") for name in fetched), fetched
    sources = browser.execute_script(
        "return [...document.querySelectorAll('[src], [href]')]"
        ".map(e => e.getAttribute('src') || e.getAttribute('href'));")
    assert sources and all(s.startswith(("data:", "#")) for s in sources), sources
    assert texts(browser, "script") == [] and "<script" not in v06_page.read_text()


@needs_logs
def test_v06_page_shows_the_published_scores_with_their_intervals_and_rank_odds(browser,
                                                                                v06_page):
    open_page(browser, v06_page)
    board = "#board-external_tuning"
    expected = score([V06 / "external_tuning"], bootstrap_replicates=200)
    for rank, (name, published) in enumerate(PUBLISHED.items(), 1):
        row = f'{board} table.leaderboard tr[data-submission="{name}"]'
        assert cell(browser, f"{row} td.score") == f"{published:.4f}"
        assert cell(browser, f"{row} td.rank") == str(rank)
        sub = expected.submission(name)
        assert cell(browser, f"{row} td.ci") == f"{sub.ci[0]:.4f} - {sub.ci[1]:.4f}"
        assert cell(browser, f"{row} td.p-rank") == f"{sub.rank_probability:.2f}"
    assert cell(browser, f"{board} dd.fact-rules-version") == "v0.6"
    assert cell(browser, f"{board} dd.fact-ruleset") == "external tuning"
    self_tuning = '#board-self_tuning tr[data-submission="schedule_free_adamw_v2"]'
    assert cell(browser, f"{self_tuning} td.score") == "0.7500"
    assert cell(browser, "#board-self_tuning dd.fact-ruleset") == "self tuning"


@needs_logs
def test_v06_time_table_matches_algoperfs_times_with_dashes_for_unrecorded_steps(browser,
                                                                                 v06_page):
    open_page(browser, v06_page)
    workloads = ("criteo1tb", "fastmri", "imagenet_resnet", "imagenet_vit",
                 "librispeech_conformer", "librispeech_deepspeech", "ogbg", "wmt")
    for name, times in ALGOPERF_TIMES.items():
        for workload in workloads:
            row = (f'#board-external_tuning tr[data-workload="{workload}"]'
                   f'[data-submission="{name}"]')
            time = times.get(workload)
            assert cell(browser, f"{row} td.time") == ("inf" if time is None else f"{time:,.1f}")
            assert cell(browser, f"{row} td.status") == ("not reached" if time is None
                                                          else "reached")
            # AlgoPerf's logs have no measurement_quality record.
            assert cell(browser, f"{row} td.steps") == "-"
            assert cell(browser, f"{row} td.step-time") == "-"
            assert cell(browser, f"{row} td.host") == "-"


@needs_logs
def test_v06_warnings_are_grouped_by_kind_with_missing_studies_first(browser, v06_page):
    open_page(browser, v06_page)
    expected = score([V06 / "external_tuning"], bootstrap_replicates=0)
    kinds = browser.execute_script(
        "return [...document.querySelectorAll('#board-external_tuning ul.warnings > li')]"
        ".map(e => e.dataset.kind);")
    counts = {k: sum(w.kind == k for w in expected.warnings) for k in kinds}
    assert kinds[0] == "incomplete" and set(kinds) == {w.kind for w in expected.warnings}
    for kind, count in counts.items():
        summary = cell(browser, f'#board-external_tuning li[data-kind="{kind}"] summary')
        assert f"({count})" in summary
    assert "No run here is signed" in cell(browser, "#verification p.verdict")


@needs_logs
def test_cli_report_writes_the_page_and_prints_its_path(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(V06 / "external_tuning"), "--out",
                                      str(tmp_path / "page"), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    page = tmp_path / "page" / "index.html"
    assert result.output.strip() == f"wrote {page}"
    assert "shampoo" in page.read_text() and "0.6244" in page.read_text()


@needs_logs
def test_cli_report_into_a_file_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    done = subprocess.run([sys.executable, "-m", "algoperf", "report",
                           str(V06 / "external_tuning"), "--bootstrap", "0", "--out",
                           str(blocker)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert blocker.read_text() == "keep me"


# --- Signed runs of our own ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def signed_runs(tmp_path_factory, keys) -> Path:
    """NAdamW on digits (PyTorch, one trial), witnessed and sealed as `algoperf docker run`
    does: a leaderboard of one signed submission."""
    experiment = tmp_path_factory.mktemp("signed")
    samples = HostSamples()  # the host samples the hardware; the runner takes none
    witness = Witness(experiment, poll_sec=0.02, samples=samples).start()
    with samples:
        done = subprocess.run(
            [sys.executable, "-m", "algoperf", "run", "--submission",
             str(SUBMISSIONS / "nadamw" / "submission_pytorch.py"), "--workload", "digits",
             "--framework", "pytorch", "--experiment-dir", str(experiment),
             "--experiment-name", "nadamw", "--tuning-search-space",
             str(SUBMISSIONS / "nadamw" / "tuning_search_space.json"),
             "--num-tuning-trials", "1", "--seed", "3", "--reference", "cpu-dev",
             "--allow-nonreference"], capture_output=True, text=True, timeout=600,
            env={**os.environ, HOST_SAMPLES_ENV: "1"})
    assert done.returncode == 0, done.stderr
    key = load_signing_key(keys[0])
    witness.sign(key)
    for trial in witness.trial_dirs:
        seal_trial(trial, key, {"submission_sha256": None})
    return experiment


@pytest.fixture(scope="module")
def signed_page(signed_runs, keys, tmp_path_factory) -> Path:
    return write_report([signed_runs], tmp_path_factory.mktemp("signed-page"),
                        bootstrap_replicates=100, pubkeys=[keys[1]])


def run_end_record(trial: Path) -> dict:
    events = [json.loads(line) for line in (trial / "events.jsonl").read_text().splitlines()]
    end = next(e for e in events if e.get("type") == "run_end")
    return end["data"][quality.RECORD_KEY]


def test_signed_page_renders_and_shows_steps_step_time_and_contention_from_run_end(
        browser, signed_runs, signed_page, tmp_path):
    assert_page_renders(browser, signed_page, tmp_path / "signed.png", plots=2)
    trial = signed_runs / "nadamw" / "study_0" / "digits_pytorch" / "trial_1"
    record = run_end_record(trial)
    row = 'tr[data-workload="digits"][data-submission="nadamw"]'
    steps = record["steps_to_target"]
    assert cell(browser, f"{row} td.steps") == ("-" if steps is None else f"{steps:,.0f}")
    assert cell(browser, f"{row} td.step-time") == f"{record['median_step_sec'] * 1e3:.3g}"
    contended = quality.assess(record).contended
    host = cell(browser, f"{row} td.host")
    assert host.startswith(f"{int(contended is True)} of 1 contended"), host
    contended_warnings = texts(browser, 'li[data-kind="contended_trial"] summary')
    assert contended_warnings == (["contended timing (1) contended_trial"] if contended
                                  else [])


def test_a_signed_run_checked_with_its_key_is_uncertified_only_for_running_outside_the_image(
        browser, signed_page):
    open_page(browser, signed_page)
    verdict = cell(browser, "#verification div.verdict")
    assert "NOT CERTIFIABLE" in verdict and "1 trial (" in verdict and "1 trusted key" in verdict
    findings = texts(browser, "#verification div.verdict li")
    uncertified = [f for f in findings if " uncertifiable: " in f]
    assert not any(" fail: " in f for f in findings), findings
    assert [f.split()[0] for f in uncertified] == ["environment"], findings


def test_a_tampered_signed_run_shows_a_failed_verdict(browser, signed_runs, keys, tmp_path):
    copy = Path(shutil.copytree(signed_runs, tmp_path / "tampered"))
    log = copy / "nadamw" / "study_0" / "digits_pytorch" / "trial_1" / "eval_measurements.csv"
    log.write_text(log.read_text().replace("\n", "\n ", 1))  # a changed byte breaks the seal
    page = write_report([copy], tmp_path / "page", bootstrap_replicates=0, pubkeys=[keys[1]])
    open_page(browser, page)
    verdict = cell(browser, "#verification div.verdict")
    assert verdict.startswith(f"{copy}: FAILED")
    assert any(" fail:" in f for f in texts(browser, "#verification div.verdict li"))


# --- Plots people can read ---------------------------------------------------------------------


def _line_styles(ax) -> list[tuple]:
    return [(line.get_color(), str(line.get_linestyle()), line.get_marker())
            for line in ax.get_lines()]


def test_identical_profiles_stay_visible_with_distinct_styles_and_staggered_markers(
        signed_runs, tmp_path):
    board = tmp_path / "board"
    shutil.copytree(signed_runs / "nadamw", board / "nadamw")
    shutil.copytree(signed_runs / "nadamw", board / "nadamw_again")  # the same times
    report = score([board], bootstrap_replicates=0)
    first, second = (s.profile for s in report.submissions)
    np.testing.assert_array_equal(first, second)
    ax = profile_figure(report).axes[0]
    lines = ax.get_lines()
    assert len(set(_line_styles(ax))) == 2
    assert lines[0].get_linewidth() > lines[1].get_linewidth()  # the one below shows its edges
    marked = [set(np.arange(len(report.taus))[m.get_markevery()[0]::m.get_markevery()[1]])
              for m in lines]
    assert marked[0].isdisjoint(marked[1])


@needs_logs
def test_profile_axes_are_labelled_in_words_with_one_legend_entry_per_submission():
    report = score([V06 / "external_tuning"], bootstrap_replicates=0)
    fig = profile_figure(report)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "fraction of workloads (8) within tau of the fastest"
    assert ax.get_xlabel() == ("tau: time to target as a multiple of the fastest "
                               "submission's time")
    legends = [c for c in ax.get_children() if type(c).__name__ == "Legend"] + fig.legends
    assert len(legends) == 1
    assert [t.get_text() for t in legends[0].get_texts()] == [
        "shampoo (score 0.6244)", "baseline (score 0.4590)"]


@needs_logs
def test_curve_plot_draws_every_trial_with_one_legend_of_submissions_and_the_target():
    report = score([V06 / "external_tuning"], bootstrap_replicates=0)
    curves = workload_curves(report, "ogbg")
    assert len(curves) == 30 and sum(c.best for c in curves) == 6  # 3 studies x 2 reached
    info = registry.get_workload("ogbg")
    fig = curves_figure(report, "ogbg", info.target_metric_name, info.validation_target_value,
                        info.direction, curves)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 30 + 1  # trials and the target line
    assert ax.get_xlabel() == "submission time (s)"
    assert ax.get_ylabel() == "validation mean_average_precision"
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "shampoo", "baseline", "target >= 0.28098"]
    profile = profile_figure(report).axes[0].get_lines()
    by_name = {h.get_label(): h for h in legend.legend_handles}
    for line, name in zip(profile, ("shampoo", "baseline"), strict=True):
        # A submission looks the same in every plot of the page.
        assert by_name[name].get_color() == line.get_color()
        assert by_name[name].get_linestyle() == line.get_linestyle()
        assert by_name[name].get_marker() == line.get_marker()
