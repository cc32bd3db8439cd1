"""Verification: signed, witnessed event logs and ``algoperf verify``, which certifies them.

Installed as ``algoperf.verification`` (never imports JAX or PyTorch, except re-execution).

Making certifiable logs (on the organizer's host, around the sandboxed run)::

    from algoperf.hardware import HostSamples
    from algoperf.verification.keys import load_signing_key
    from algoperf.verification.witness import Witness
    from algoperf.verification.seal import seal_trial

    key = load_signing_key("organizer.key")
    samples = HostSamples()                      # the host samples; the sandbox gets
    witness = Witness(run_dir, samples=samples).start()  # ALGOPERF_HOST_SAMPLES=1
    with samples:
        ...                                      # the run writes events.jsonl files
    witness.sign(key)                            # witness_<k>.dsse.json per trial
    for trial_dir in witness.trial_dirs:
        seal_trial(trial_dir, key, {"image_id": ..., "lockfile_sha256": ...})

Checking them::

    from algoperf.verification.verify import verify
    from algoperf.verification.context import Options
    from algoperf.verification.keys import trusted_keys

    result = verify(path, Options(trusted=trusted_keys(["organizer.pub"])))
    result.verdict, result.exit_code      # "verified" 0 / "failed" 1 / "not certifiable" 2

Modules: `keys` (Ed25519), `dsse` (signed envelopes), `statement` (in-toto Statement v1),
`eventlog` (one-pass chain reader), `tables` (the CSV the events imply), `timing` (clock
invariants), `seal` and `witness` (what the host signs), `event_checks` and `signatures`
(the checks of one trial), `trial` and `legacy` (a trial of ours, or of AlgoPerf),
`scores` (recomputed scores and claims), `verify`, `reexecute`, `certificate`, `command`,
`signing` (what `algoperf docker run --signing-key` does around its container). The log
layout (what a PATH is) is `algoperf.scoring.discover`'s, shared with `algoperf score`.
See docs/verify.md.
"""

from algoperf.verification.context import Options
from algoperf.verification.keys import generate_keypair, load_signing_key, trusted_keys
from algoperf.verification.seal import seal_trial
from algoperf.verification.verify import verify
from algoperf.verification.witness import Witness

__all__ = ["Options", "Witness", "generate_keypair", "load_signing_key", "seal_trial",
           "trusted_keys", "verify"]
