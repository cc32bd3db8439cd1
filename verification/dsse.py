"""DSSE envelopes: a signed payload with its type, as in-toto attestations are carried.

An envelope is ``{"payloadType", "payload" (base64), "signatures": [{"keyid", "sig"}]}``. The
signature covers the pre-authentication encoding (PAE)
``"DSSEv1" SP len(type) SP type SP len(payload) SP payload``, so a signature made for one
payload type can never be replayed as another.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from algoperf.verification.eventlog import loads
from algoperf.verification.keys import SigningKey, TrustedKeys

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EnvelopeError(ValueError):
    """An envelope that is malformed or whose signature does not verify."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """The bytes a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def sign_envelope(payload: bytes, key: SigningKey,
                  payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> dict[str, Any]:
    """An envelope holding ``payload`` signed by ``key``."""
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key.id,
                        "sig": base64.b64encode(key.sign(pae(payload_type, payload))).decode()}],
    }


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    """The file form of an envelope: indented JSON with a final newline."""
    return (json.dumps(envelope, indent=2) + "\n").encode()


def open_envelope(data: bytes, trusted: TrustedKeys,
                  payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> tuple[bytes, str]:
    """The payload of the envelope in ``data`` and the id of the trusted key that signed it.

    Raises EnvelopeError naming the problem: not an envelope, another payload type, no
    signature from a trusted key, or a signature that does not verify.
    """
    try:
        envelope = loads(data)
    except ValueError as e:
        raise EnvelopeError(f"not JSON ({e})") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("not a DSSE envelope (a JSON object is expected)")
    if envelope.get("payloadType") != payload_type:
        raise EnvelopeError(f"payloadType is {envelope.get('payloadType')!r}, "
                            f"not {payload_type!r}")
    payload = _b64(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise EnvelopeError("the envelope has no signatures")
    message = pae(payload_type, payload)
    seen = []
    for entry in signatures:
        if not isinstance(entry, dict):
            raise EnvelopeError("a signature entry is not an object")
        keyid = entry.get("keyid")
        if not isinstance(keyid, str):
            raise EnvelopeError("a signature has no keyid")
        if trusted.verify(keyid, _b64(entry.get("sig"), "sig"), message):
            return payload, keyid
        seen.append(keyid)
    known = [k for k in seen if k in trusted.keys]
    if known:
        raise EnvelopeError(f"the signature by key {known[0][:16]} does not verify: the "
                            "signed content was changed or the signature forged")
    ids = ", ".join(k[:16] for k in seen)
    raise EnvelopeError(f"signed by key {ids}, which is not among the trusted keys "
                        "(--pubkey)")


def read_payload_unverified(data: bytes) -> bytes:
    """The payload of an envelope without checking any signature (for reports when no key is
    given). Raises EnvelopeError when ``data`` is not an envelope."""
    try:
        envelope = loads(data)
    except ValueError as e:
        raise EnvelopeError(f"not JSON ({e})") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("not a DSSE envelope (a JSON object is expected)")
    return _b64(envelope.get("payload"), "payload")


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError(f"the envelope's {what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"the envelope's {what} is not base64") from None
