"""in-toto Statement v1: what is attested (subjects and their digests) and the claim about them.

Layout (in-toto attestation spec v1)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "<path>", "digest": {"sha256": "<hex>"}}, ...],
     "predicateType": "<URI>",
     "predicate": {...}}

The predicate types of this package are URNs (``urn:algoperf:<kind>:v1``): a run's seal
(`SEAL`), a witness record (`WITNESS`) and a verification certificate (`CERTIFICATE`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from algoperf.verification.eventlog import loads

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SEAL = "urn:algoperf:run-seal:v1"
WITNESS = "urn:algoperf:witness:v1"
CERTIFICATE = "urn:algoperf:verification:v1"


def statement(subjects: Mapping[str, str], predicate_type: str,
              predicate: Mapping[str, Any]) -> dict[str, Any]:
    """A Statement over ``subjects`` (name -> sha256 hex), in name order."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}}
                    for name, digest in sorted(subjects.items())],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def statement_bytes(data: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a Statement (sorted keys, compact): what envelopes sign."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def parse_statement(payload: bytes, predicate_type: str) -> tuple[dict[str, str], dict]:
    """(subjects as name -> sha256, predicate) of a Statement of ``predicate_type``.

    Raises ValueError naming what is wrong with the Statement.
    """
    try:
        data = loads(payload)
    except ValueError as e:
        raise ValueError(f"the statement is not JSON ({e})") from None
    if not isinstance(data, dict) or data.get("_type") != STATEMENT_TYPE:
        raise ValueError("not an in-toto Statement v1")
    if data.get("predicateType") != predicate_type:
        raise ValueError(f"predicateType is {data.get('predicateType')!r}, not "
                         f"{predicate_type!r}")
    predicate = data.get("predicate")
    if not isinstance(predicate, dict):
        raise ValueError("the statement has no predicate object")
    return _subjects(data.get("subject")), predicate


def _subjects(entries: Any) -> dict[str, str]:
    if not isinstance(entries, list):
        raise ValueError("the statement's subject is not a list")
    subjects: dict[str, str] = {}
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        digest = entry.get("digest") if isinstance(entry, dict) else None
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(name, str) or not isinstance(sha, str):
            raise ValueError("a subject has no name or no sha256 digest")
        if name in subjects:
            raise ValueError(f"subject {name!r} is listed twice")
        subjects[name] = sha
    return subjects
