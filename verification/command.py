"""``algoperf verify`` (certify logs, exit 0/1/2) and ``algoperf keys generate``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from algoperf.terminal import CommandGroup
from algoperf.workloads import registry

LOCKS_PACKAGE = "algoperf.containers"


def known_lockfile_hashes(containers_dir: Path | None) -> frozenset[str] | None:
    """sha256 of every lockfile in ``containers_dir/locks`` (default: the installed
    algoperf.containers); None when there are none to compare with."""
    from algoperf.hashing import file_sha256

    if containers_dir is None:
        try:
            from importlib import resources

            containers_dir = Path(str(resources.files(LOCKS_PACKAGE)))
        except (ModuleNotFoundError, TypeError):
            return None
    locks = sorted((containers_dir / "locks").glob("*.txt"))
    return frozenset(file_sha256(p) for p in locks) or None


@click.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path),
              help="Trusted public key (.pub file or a folder of them); repeatable.")
@click.option("--reference", metavar="PROFILE",
              help="Reference hardware profile to hold the runs to (default: the one each run "
                   "recorded).")
@click.option("--claimed", type=click.Path(path_type=Path),
              help="Claimed scores: algoperf score's report.json (or --out folder), or "
                   "AlgoPerf's scores.csv / time_to_targets.csv.")
@click.option("--rules", type=click.Choice(sorted(registry.RULES)), default=None,
              help="Rules version for logs that do not record one (AlgoPerf's); default v0.6.")
@click.option("--submission", type=click.Path(path_type=Path),
              help="The submission the runs must have used (its source hash is compared); "
                   "also what --reexecute runs.")
@click.option("--containers", "containers_dir", type=click.Path(path_type=Path),
              help="containers/ folder whose locks/ the lockfile hashes must match "
                   "(default: the installed one).")
@click.option("--witness-tolerance", default=1.0, show_default=True, type=float,
              help="Seconds the run's claimed durations may differ from the witness's clock "
                   "(plus --witness-rel-tolerance of the interval).")
@click.option("--witness-rel-tolerance", default=0.01, show_default=True, type=float)
@click.option("--reexecute", "reexecute_steps", type=click.IntRange(min=1), default=None,
              metavar="N", help="Re-run the first N steps of a trial per workload on this "
                                "machine and compare the logged losses and first eval.")
@click.option("--data-dir", type=click.Path(path_type=Path),
              help="Your prepared datasets (algoperf datasets prepare): the runs' dataset roots "
                   "must match them; also the data for --reexecute (default: the run's).")
@click.option("--reexecute-rtol", default=1e-4, show_default=True, type=float)
@click.option("--reexecute-atol", default=1e-6, show_default=True, type=float)
@click.option("--out", "out_dir", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the certificate and report go [default: PATH.verification beside "
                   "PATH].")
@click.option("--sign-key", type=click.Path(path_type=Path),
              help="Also sign the certificate with this private key.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: one per CPU).")
@click.pass_context
def verify_command(ctx: click.Context, path: Path, pubkeys: tuple[Path, ...],
                   reference: str | None, claimed: Path | None, rules: str | None,
                   submission: Path | None, containers_dir: Path | None,
                   witness_tolerance: float, witness_rel_tolerance: float,
                   reexecute_steps: int | None, data_dir: Path | None, reexecute_rtol: float,
                   reexecute_atol: float, out_dir: Path | None, sign_key: Path | None,
                   jobs: int | None) -> None:
    """Verify the logs under PATH (a trial, study, submission or leaderboard tree) and write
    a certificate. Exit status: 0 verified, 1 failed, 2 not certifiable (legacy logs,
    unsigned or non-reference runs)."""
    from algoperf.hardware import load_profile
    from algoperf.verification import certificate
    from algoperf.verification.context import Options
    from algoperf.verification.keys import load_signing_key, trusted_keys
    from algoperf.verification.scores import load_claims
    from algoperf.verification.verify import verify

    if reference is not None:
        load_profile(reference)  # an unknown profile is a usage error, before any work
    key = load_signing_key(sign_key) if sign_key else None
    options = Options(trusted=trusted_keys(list(pubkeys)), reference=reference,
                      lockfile_sha256s=known_lockfile_hashes(containers_dir),
                      submission_sha256=_submission_digest(submission),
                      witness_abs_tol=witness_tolerance, witness_rel_tol=witness_rel_tolerance,
                      data_dir=data_dir)
    claims = load_claims(claimed) if claimed else None
    reexecute = None
    if reexecute_steps:
        from algoperf.verification.reexecute import Settings, reexecution

        reexecute = reexecution(Settings(reexecute_steps, submission, data_dir,
                                         reexecute_rtol, reexecute_atol))
    result = verify(path, options, rules=rules, claims=claims, jobs=jobs, reexecute=reexecute)
    if out_dir is None:
        from algoperf.scoring.discover import verification_dir

        out_dir = verification_dir(path)
    written = certificate.write_outputs(result, out_dir, key, extra={
        "claims": str(claimed) if claimed else None, "reexecute_steps": reexecute_steps})
    click.echo(certificate.report(result), nl=False)
    click.echo(f"\ncertificate: {written['certificate']}"
               + (f" (signed: {written['signed']})" if "signed" in written else "")
               + f"\nreport: {written['report']}")
    ctx.exit(result.exit_code)


def _submission_digest(submission: Path | None) -> str | None:
    if submission is None:
        return None
    from algoperf.errors import UserError
    from algoperf.submission import source_digest

    path = submission if submission.is_file() else None
    if path is None and submission.is_dir():
        found = sorted(submission.glob("submission*.py"))
        path = found[0] if found else None
    if path is None:
        raise UserError(f"no submission at {submission}; pass a submission .py file or its "
                        "folder")
    return source_digest(path)


@click.group("keys", cls=CommandGroup)
def keys_group() -> None:
    """Signing keys for sealing and witnessing runs (Ed25519)."""


@keys_group.command("generate")
@click.option("--out", "out_dir", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the key files [default: the current folder, only when "
                   "ALGOPERF_KEY_PASSPHRASE encrypts the private key].")
@click.option("--name", default="organizer", show_default=True,
              help="Files are <name>.key (private, mode 0600) and <name>.pub.")
@click.option("--force", is_flag=True, help="Replace existing key files.")
def generate_command(out_dir: Path | None, name: str, force: bool) -> None:
    """Make an Ed25519 key pair. With ALGOPERF_KEY_PASSPHRASE set, the private key is
    encrypted with it."""
    from algoperf.verification.keys import PASSPHRASE_ENV, generate_keypair, load_public_key
    from algoperf.verification.keys import key_id as make_key_id

    passphrase = os.environ.get(PASSPHRASE_ENV)
    if out_dir is None and not passphrase:
        from algoperf.errors import UserError

        raise UserError("refusing to write an unencrypted private key into the current folder; "
                        f"pass --out DIR for the key files, or set {PASSPHRASE_ENV} to "
                        "encrypt it")
    out_dir = Path(".") if out_dir is None else out_dir
    private, public = generate_keypair(out_dir, name, passphrase.encode() if passphrase
                                       else None, force)
    click.echo(f"private key: {private} (keep it on the organizer's host; never mount it "
               "into a container)")
    click.echo(f"public key:  {public} (give it to auditors: algoperf verify --pubkey)")
    click.echo(f"key id:      {make_key_id(load_public_key(public))}")
