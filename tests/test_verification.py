"""algoperf verify on real runs: a witnessed and sealed digits run, tampered copies of it, a
submission that fakes its clock, AlgoPerf's published logs, claims and the certificate."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ALGOPERF_LOGS

from algoperf.errors import UserError
from algoperf.hardware import HOST_SAMPLES_ENV, HostSamples
from algoperf.logs.events import line_hash
from algoperf.verification import dsse, statement
from algoperf.verification.certificate import certificate, write_outputs
from algoperf.verification.context import Options
from algoperf.verification.findings import FAIL, NOTE, PASS, SKIP, UNCERTIFIABLE
from algoperf.verification.keys import (
    TrustedKeys,
    generate_keypair,
    load_public_key,
    load_signing_key,
    trusted_keys,
)
from algoperf.verification.scores import load_claims
from algoperf.verification.seal import seal_trial
from algoperf.verification.timing import EvalPoint, check_timing
from algoperf.verification.verify import verify
from algoperf.verification.witness import Witness

ROOT = Path(__file__).resolve().parent.parent
NADAMW = ROOT / "submissions" / "nadamw"
V06 = ALGOPERF_LOGS / "v0.6"
TRIAL = Path("nadamw/study_0/digits_pytorch/trial_1")



def witnessed_run(experiment_dir: Path, key_path: Path, submission: Path,
                  num_trials: int = 1) -> list[Path]:
    """`algoperf run` of digits in a subprocess, watched by a Witness in this process, which
    also takes the hardware samples (the runner takes none), then witnessed and sealed with
    the key: what `algoperf docker run` does around its container."""
    key = load_signing_key(key_path)
    samples = HostSamples()
    witness = Witness(experiment_dir, poll_sec=0.02, samples=samples).start()
    with samples:
        done = subprocess.run(
            [sys.executable, "-m", "algoperf", "run", "--submission", str(submission),
             "--workload", "digits", "--framework", "pytorch", "--experiment-dir",
             str(experiment_dir), "--experiment-name", "nadamw", "--tuning-search-space",
             str(NADAMW / "tuning_search_space.json"), "--num-tuning-trials", str(num_trials),
             "--seed", "3", "--reference", "cpu-dev", "--allow-nonreference"],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, HOST_SAMPLES_ENV: "1"})
    assert done.returncode == 0, done.stderr
    witness.sign(key)
    return [seal_trial(t, key, {"submission_sha256": None}) for t in witness.trial_dirs]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def signed_run(tmp_path_factory, keys) -> Path:
    """Two sealed, witnessed trials of nadamw on digits (made once per module)."""
    experiment = tmp_path_factory.mktemp("signed")
    witnessed_run(experiment, keys[0], NADAMW / "submission_pytorch.py", num_trials=2)
    return experiment


@pytest.fixture
def copy(signed_run, tmp_path) -> Path:
    """A fresh copy of the signed run to tamper with."""
    return Path(shutil.copytree(signed_run, tmp_path / "copy"))


def options(keys, **kw) -> Options:
    return Options(trusted=trusted_keys([keys[1]]), **kw)


def statuses(result, trial: Path = TRIAL) -> dict[str, str]:
    verdict = next(t for t in result.trials if t.path == trial.as_posix())
    return {c.name: c.status for c in verdict.checks}


def problems(result, check: str) -> list[str]:
    return [str(p) for t in result.trials for c in t.checks if c.name == check
            for p in c.problems] + [str(p) for c in result.checks if c.name == check
                                    for p in c.problems]


def rewrite_events(path: Path, edit) -> None:
    """Applies ``edit`` to the records and rewrites the whole chain, as a forger would."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records = edit(records)
    prev, out = line_hash(b""), []
    for seq, record in enumerate(records):
        record["seq"], record["prev"] = seq, prev
        line = json.dumps(record, separators=(",", ":")).encode()
        prev = line_hash(line)
        out.append(line)
    path.write_bytes(b"\n".join(out) + b"\n")


# --- keys and envelopes ---------------------------------------------------------------------

def test_keys_generate_private_key_owner_only_and_refuse_to_overwrite(tmp_path):
    private, public = generate_keypair(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert load_signing_key(private).id in trusted_keys([public]).keys
    with pytest.raises(UserError, match="already exists"):
        generate_keypair(tmp_path)


def test_encrypted_key_needs_its_passphrase(tmp_path, monkeypatch):
    private, _ = generate_keypair(tmp_path, passphrase=b"s3cret")
    monkeypatch.delenv("ALGOPERF_KEY_PASSPHRASE", raising=False)
    with pytest.raises(UserError, match="encrypted"):
        load_signing_key(private)
    monkeypatch.setenv("ALGOPERF_KEY_PASSPHRASE", "s3cret")
    assert load_signing_key(private).id


def test_envelope_rejects_changed_payload_unknown_key_and_other_type(keys, tmp_path):
    key = load_signing_key(keys[0])
    trusted = TrustedKeys.of(load_public_key(keys[1]))
    envelope = dsse.sign_envelope(b'{"a":1}', key)
    assert dsse.open_envelope(json.dumps(envelope).encode(), trusted) == (b'{"a":1}', key.id)
    forged = dict(envelope, payload=base64.b64encode(b'{"a":2}').decode())
    with pytest.raises(dsse.EnvelopeError, match="does not verify"):
        dsse.open_envelope(json.dumps(forged).encode(), trusted)
    other, _ = generate_keypair(tmp_path, "other")
    by_other = dsse.sign_envelope(b'{"a":1}', load_signing_key(other))
    with pytest.raises(dsse.EnvelopeError, match="not among the trusted keys"):
        dsse.open_envelope(json.dumps(by_other).encode(), trusted)
    with pytest.raises(dsse.EnvelopeError, match="payloadType"):
        dsse.open_envelope(json.dumps(envelope).encode(), trusted, "text/plain")


# --- a witnessed, sealed run ------------------------------------------------------------------

def test_witnessed_sealed_run_passes_every_check_but_the_image(signed_run, keys):
    result = verify(signed_run, options(keys))
    found = statuses(result)
    assert found.pop("environment") == UNCERTIFIABLE  # a host run: no pinned image
    # How busy this host was is a finding (or unknown), never part of certification.
    assert found.pop("measurement") in (PASS, NOTE, SKIP)
    assert set(found.values()) == {PASS}, found
    assert result.verdict == "not certifiable" and result.exit_code == 2
    assert [c.status for c in result.checks] == [PASS, PASS]
    assert len(result.trials) == 2


def test_without_pubkey_a_sealed_run_is_not_certifiable(signed_run):
    found = statuses(verify(signed_run))
    assert found["seal"] == UNCERTIFIABLE and found["witness"] == UNCERTIFIABLE


def test_unsigned_run_is_not_certifiable(copy, keys):
    for path in copy.rglob("*.dsse.json"):
        path.unlink()
    result = verify(copy, options(keys))
    assert statuses(result)["seal"] == UNCERTIFIABLE
    assert result.exit_code == 2


def test_seal_signed_by_another_key_fails(copy, keys, tmp_path):
    other, _ = generate_keypair(tmp_path, "forger")
    seal_trial(copy / TRIAL, load_signing_key(other))
    result = verify(copy, options(keys))
    assert statuses(result)["seal"] == FAIL
    assert "not among the trusted keys" in problems(result, "seal")[0]


def test_forged_seal_signature_fails(copy, keys):
    path = copy / TRIAL / "seal.dsse.json"
    envelope = json.loads(path.read_text())
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[0] ^= 1
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    path.write_text(json.dumps(envelope))
    result = verify(copy, options(keys))
    assert statuses(result)["seal"] == FAIL
    assert "does not verify" in problems(result, "seal")[0]


# --- tampering: each is caught, with file, line and reason ------------------------------------

def test_edited_line_breaks_the_chain_the_seal_and_the_witness(copy, keys):
    path = copy / TRIAL / "events.jsonl"
    lines = path.read_bytes().split(b"\n")
    index = next(i for i, line in enumerate(lines) if b'"type":"eval"' in line)
    lines[index] = lines[index].replace(b'"global_step":', b'"global_step":1', 1)
    path.write_bytes(b"\n".join(lines))
    result = verify(copy, options(keys))
    assert f"{TRIAL}/events.jsonl:{index + 2}: prev does not match" in problems(
        result, "event chain")[0]
    assert any(f"events.jsonl:{index + 1}: changed after the witness saw it" in p
               for p in problems(result, "witness"))
    assert any("changed after it was sealed" in p for p in problems(result, "seal"))
    assert result.exit_code == 1


def test_rewritten_log_with_a_valid_chain_is_caught_by_seal_and_witness(copy, keys):
    """A forger who recomputes the whole chain after editing a metric."""
    def faster(records):
        for record in records:
            if record["type"] == "eval":
                record["data"]["metrics"]["score"] /= 2
                record["data"]["metrics"]["accumulated_submission_time"] /= 2
        return records

    rewrite_events(copy / TRIAL / "events.jsonl", faster)
    result = verify(copy, options(keys))
    found = statuses(result)
    assert found["event chain"] == PASS
    assert found["seal"] == FAIL and found["witness"] == FAIL and found["eval csv"] == FAIL
    assert any("changed after the witness saw it" in p for p in problems(result, "witness"))


def test_cut_last_line_is_caught(copy, keys):
    path = copy / TRIAL / "events.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    result = verify(copy, options(keys))
    assert any(f"events.jsonl:{len(lines)}: gone" in p for p in problems(result, "witness"))
    assert any(f"has {len(lines) - 1} lines" in p for p in problems(result, "seal"))


def test_partial_last_line_is_reported_as_truncated(copy, keys):
    path = copy / TRIAL / "events.jsonl"
    content = path.read_bytes()
    path.write_bytes(content[:-20])
    result = verify(copy, options(keys))
    assert any("truncated line" in p for p in problems(result, "event chain"))


@pytest.mark.parametrize("change, reason", [
    (lambda lines: lines[:3] + [lines[4], lines[3]] + lines[5:], "prev does not match"),
    (lambda lines: lines[:4] + [lines[3]] + lines[4:], "duplicate seq"),
])
def test_reordered_or_duplicated_lines_break_the_chain(copy, keys, change, reason):
    path = copy / TRIAL / "events.jsonl"
    path.write_bytes(b"".join(change(path.read_bytes().splitlines(keepends=True))))
    result = verify(copy, options(keys))
    assert any(f"events.jsonl:5: {reason}" in p for p in problems(result, "event chain"))


def test_line_appended_after_the_run_was_never_witnessed(copy, keys):
    rewrite_events(copy / TRIAL / "events.jsonl", lambda records: records + [
        {"seq": 0, "type": "checkpoint", "t_wall": 0.0, "t_mono": 0.0, "data": {}, "prev": ""}])
    result = verify(copy, options(keys))
    assert any("never seen by a witness" in p for p in problems(result, "witness"))


def test_csv_that_disagrees_with_the_events_is_named_by_line_and_column(copy, keys):
    path = copy / TRIAL / "eval_measurements.csv"
    lines = path.read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    cells = lines[2].strip().split(",")
    column = header.index("validation/accuracy")
    cells[column] = "0.999"
    lines[2] = ",".join(cells) + "\n"
    path.write_text("".join(lines))
    result = verify(copy, options(keys))
    found = problems(result, "eval csv")
    assert found[0].startswith(f"{TRIAL}/eval_measurements.csv:3: validation/accuracy is "
                               "'0.999' but the eval event")
    assert any("eval_measurements.csv: changed after it was sealed" in p
               for p in problems(result, "seal"))


def test_swapped_trial_directories_are_detected(copy, keys):
    one, two = copy / TRIAL, copy / TRIAL.parent / "trial_2"
    one.rename(copy / "tmp")
    two.rename(one)
    (copy / "tmp").rename(two)
    result = verify(copy, options(keys))
    assert any("says trial trial_2, but the directory is trial_1" in p
               for p in problems(result, "trial identity"))
    assert any("sealed as nadamw/study_0/digits_pytorch/trial_2, found at "
               "nadamw/study_0/digits_pytorch/trial_1" in p for p in problems(result, "seal"))


def test_file_added_after_sealing_is_detected(copy, keys):
    (copy / TRIAL / "notes.txt").write_text("better results")
    result = verify(copy, options(keys))
    assert f"{TRIAL}/notes.txt: added after sealing: not in the signed manifest" in problems(
        result, "seal")


def test_submission_other_than_the_one_that_ran_fails(signed_run, keys, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(NADAMW, other)
    (other / "submission_pytorch.py").write_text((other / "submission_pytorch.py").read_text()
                                                 + "\n# changed\n")
    from algoperf.submission import source_digest

    result = verify(signed_run, options(keys, submission_sha256=source_digest(
        other / "submission_pytorch.py")))
    assert statuses(result)["submission"] == FAIL


# --- a submission that fakes its clock --------------------------------------------------------

CHEAT = '''
"""NAdamW that reports a quarter of the time it takes: it slows the runner's clock."""
import importlib.util
import time

_real = time.perf_counter
_start = _real()
time.perf_counter = lambda: _start + (_real() - _start) / 4

_spec = importlib.util.spec_from_file_location("honest", {path!r})
_honest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_honest)
get_batch_size = _honest.get_batch_size
init_optimizer_state = _honest.init_optimizer_state
prepare_for_eval = _honest.prepare_for_eval
data_selection = _honest.data_selection


def update_params(*args, **kwargs):
    time.sleep(0.03)  # a slower algorithm, hidden by the clock
    return _honest.update_params(*args, **kwargs)
'''


def test_submission_that_patches_the_clock_is_caught_by_the_witness(tmp_path, keys):
    cheat = tmp_path / "cheat"
    cheat.mkdir()
    (cheat / "submission_pytorch.py").write_text(
        CHEAT.format(path=str(NADAMW / "submission_pytorch.py")))
    experiment = tmp_path / "runs"
    witnessed_run(experiment, keys[0], cheat / "submission_pytorch.py")
    result = verify(experiment, options(keys))
    found = statuses(result)
    assert found["timing"] == PASS and found["event chain"] == PASS  # self-consistent...
    assert found["witness"] == FAIL  # ...but not on the host's clock
    assert any("the run's clock was not the host's" in p or "the witness saw only" in p
               for p in problems(result, "witness"))


# --- timing invariants --------------------------------------------------------------------

def point(line, step, sub, ev, total, segment=0, log=0.0):
    return EvalPoint("f.csv", line, segment, step, sub, (sub, ev, log), total)


def test_timing_reports_early_evals_overspent_clocks_and_budget():
    ok = [point(2, 1, 1.0, 0.5, 1.6), point(3, 10, 3.0, 1.0, 4.2)]
    assert check_timing(ok, eval_period=2.0, budget=10.0, final_eval_forced=False) == []
    early = [point(2, 1, 1.0, 0.5, 1.6), point(3, 10, 1.5, 1.0, 3.0)]
    assert "before the 2s eval period" in str(check_timing(early, 2.0, 10.0, False)[0])
    assert check_timing(early, 2.0, 10.0, final_eval_forced=True) == []
    overspent = [point(2, 1, 1.0, 0.5, 1.2)]
    assert "more than the" in str(check_timing(overspent, 2.0, 10.0, False)[0])
    over_budget = [point(2, 1, 11.0, 0.5, 12.0)]
    assert "past the 10s budget" in str(check_timing(over_budget, 2.0, 10.0, False)[0])
    backwards = [point(2, 5, 3.0, 1.0, 4.2), point(3, 4, 2.0, 1.0, 7.0)]
    found = " ".join(map(str, check_timing(backwards, None, None, False)))
    assert "went back" in found and "does not follow" in found


# --- AlgoPerf's published logs ------------------------------------------------------------------

def test_published_algoperf_logs_are_legacy_unsigned_with_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "algoperf", "verify", str(V06), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert "LEGACY, UNSIGNED" in done.stdout
    assert "| shampoo | 0.6244 |" in done.stdout and "| baseline | 0.4590 |" in done.stdout
    cert = json.loads((tmp_path / "out" / "certificate.intoto.json").read_text())
    assert cert["predicate"]["verdict"] == "legacy, unsigned"
    assert cert["predicate"]["summary"]["trials"] == 264


def legacy_copy(tmp_path: Path) -> Path:
    root = tmp_path / "legacy" / "baseline"
    shutil.copytree(V06 / "external_tuning" / "baseline" / "study_0" / "ogbg_jax",
                    root / "study_0" / "ogbg_jax")
    return root


def test_swapped_legacy_trials_fail_with_the_flags_file_named(tmp_path):
    root = legacy_copy(tmp_path)
    one, two = root / "study_0/ogbg_jax/trial_1", root / "study_0/ogbg_jax/trial_2"
    one.rename(root / "tmp")
    two.rename(one)
    (root / "tmp").rename(two)
    result = verify(root)
    assert result.verdict == "failed" and result.exit_code == 1
    assert any("study_0/ogbg_jax/trial_1/flags_0.json: ran hyperparameter point 2" in p
               for p in problems(result, "trial identity"))


def test_duplicate_seeds_across_trials_fail(tmp_path):
    root = legacy_copy(tmp_path)
    seeds = {}
    for name in ("flags_0.json", "meta_data_0.json"):
        for trial in ("trial_1", "trial_2"):
            path = root / "study_0/ogbg_jax" / trial / name
            data = json.loads(path.read_text())
            seeds.setdefault(name, data["rng_seed"])
            data["rng_seed"] = seeds[name]
            path.write_text(json.dumps(data))
    result = verify(root)
    assert any("seeds must differ" in p for p in problems(result, "seeds"))


def test_legacy_csv_edit_breaking_the_clock_is_named_by_line(tmp_path):
    root = legacy_copy(tmp_path)
    path = root / "study_0/ogbg_jax/trial_1/eval_measurements.csv"
    lines = path.read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    cells = lines[4].strip().split(",")
    cells[header.index("score")] = "1.0"  # a faster time-to-target, by hand
    lines[4] = ",".join(cells) + "\n"
    path.write_text("".join(lines))
    found = problems(verify(root), "timing")
    assert any("trial_1/eval_measurements.csv:5: score 1.0 is not the accumulated" in p
               for p in found)


# --- claims -------------------------------------------------------------------------------------

def test_published_scores_agree_and_a_changed_claim_fails(tmp_path):
    claims = tmp_path / "scores.csv"
    claims.write_text("submission,score\nshampoo,0.6244\nbaseline,0.4590\n")
    result = verify(V06 / "external_tuning", claims=load_claims(claims))
    claim = next(c for c in result.checks if c.name == "claims")
    assert claim.status == PASS, claim
    claims.write_text("submission,score\nshampoo,0.6300\nbaseline,0.4590\n")
    result = verify(V06 / "external_tuning", claims=load_claims(claims))
    assert problems(result, "claims") == [
        "scores.csv: shampoo: claims score 0.6300, the logs give 0.624368686868687"]
    assert result.exit_code == 1


def test_score_report_json_is_a_claims_file(signed_run, keys, tmp_path):
    report = subprocess.run([sys.executable, "-m", "algoperf", "score", str(signed_run),
                             "--format", "json", "--bootstrap", "0"], capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    claims = tmp_path / "report.json"
    claims.write_text(report.stdout)
    result = verify(signed_run, options(keys), claims=load_claims(claims))
    assert next(c for c in result.checks if c.name == "claims").status == PASS
    data = json.loads(report.stdout)
    data["submissions"][0]["times"]["digits"] *= 0.9
    claims.write_text(json.dumps(data))
    result = verify(signed_run, options(keys), claims=load_claims(claims))
    assert "nadamw digits: claims time" in problems(result, "claims")[0]


# --- the certificate and the command ------------------------------------------------------------

def test_certificate_is_an_in_toto_statement_over_every_file(signed_run, keys, tmp_path):
    result = verify(signed_run, options(keys))
    cert = certificate(result)
    assert cert["_type"] == statement.STATEMENT_TYPE
    assert cert["predicateType"] == statement.CERTIFICATE
    subjects = {s["name"]: s["digest"]["sha256"] for s in cert["subject"]}
    events = signed_run / TRIAL / "events.jsonl"
    from algoperf.hashing import file_sha256

    assert subjects[f"{TRIAL}/events.jsonl"] == file_sha256(events)
    assert f"{TRIAL}/seal.dsse.json" in subjects
    written = write_outputs(result, tmp_path / "out", load_signing_key(keys[0]))
    payload, _ = dsse.open_envelope(written["signed"].read_bytes(), options(keys).trusted)
    assert json.loads(payload)["predicate"]["verdict"] == "not certifiable"
    assert "NOT CERTIFIABLE" in written["report"].read_text()


def test_verify_command_exit_codes_and_one_line_errors(signed_run, keys, tmp_path):
    def algoperf(*args):
        return subprocess.run([sys.executable, "-m", "algoperf", *args], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)

    done = algoperf("verify", str(signed_run), "--pubkey", str(keys[1]))
    assert done.returncode == 2, done.stderr
    beside = signed_run.parent / (signed_run.name + ".verification")  # beside the logs
    assert (beside / "certificate.intoto.json").is_file()
    assert not (tmp_path / "verification").exists()  # nothing in the current folder
    missing = algoperf("verify", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ") and len(missing.stderr.splitlines()) == 1
    bad_key = tmp_path / "bad.pub"
    bad_key.write_text("not a key")
    done = algoperf("verify", str(signed_run), "--pubkey", str(bad_key))
    assert done.stderr.strip() == (f"error: public key {bad_key} is not a PEM public key; pass "
                                   "the .pub file written by `algoperf keys generate`")
    unencrypted = algoperf("keys", "generate")
    assert unencrypted.returncode == 2 and "refusing to write an unencrypted" in unencrypted.stderr
    assert not list(tmp_path.glob("organizer.*"))
    generated = algoperf("keys", "generate", "--out", "k")
    assert generated.returncode == 0 and (tmp_path / "k" / "organizer.pub").is_file()
    assert os.stat(tmp_path / "k" / "organizer.key").st_mode & 0o077 == 0


def test_signing_key_inside_a_folder_the_container_sees_is_refused(tmp_path):
    from algoperf.verification.signing import signed_run

    mounted = tmp_path / "submission"
    private, _ = generate_keypair(mounted)
    with pytest.raises(UserError, match="inside .* which the container can read"):
        with signed_run(private, tmp_path / "runs", [mounted], {}):
            pass


def test_dataset_roots_must_agree_across_trials_and_with_the_auditors_copy(copy, tmp_path):
    from algoperf.datasets import content

    for path in copy.rglob("*.dsse.json"):
        path.unlink()  # an unsigned copy: the edits below re-chain the logs
    prepared = tmp_path / "data" / "digits"
    prepared.mkdir(parents=True)
    (prepared / "images.npy").write_bytes(b"pixels")
    content.write(prepared, content.scan(prepared, "digits"))
    root = content.read(prepared).root
    for trial, value in (("trial_1", root), ("trial_2", "f" * 64)):
        def set_root(records, value=value):
            records[0]["data"]["dataset_manifest_root"] = value
            return records

        rewrite_events(copy / TRIAL.parent / trial / "events.jsonl", set_root)
    result = verify(copy, Options(data_dir=tmp_path / "data"))
    assert "digits: trials ran on 2 different datasets" in " ".join(problems(result,
                                                                             "consistency"))
    assert statuses(result)["dataset"] == PASS  # trial_1: the auditor's copy
    assert any("the copy in" in p for p in problems(result, "dataset"))  # trial_2
