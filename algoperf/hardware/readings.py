"""Tri-state readings: every fingerprint field holds a value, "not supported", or an error.

A GPU that lacks a feature (MIG on a V100, a serial number on a consumer board) and a query that
failed (no permission, a lost GPU) are different facts, and neither is a value: a profile can ask
for "not supported" explicitly, while an error never matches anything.

In JSON a value is written as itself and the other two as ``{"status": ..., "detail": ...}``;
values are therefore never JSON objects (scalars, strings, null and lists only).
"""

from __future__ import annotations

import dataclasses
from typing import Any

OK = "ok"
NOT_SUPPORTED = "not_supported"
ERROR = "error"


@dataclasses.dataclass(frozen=True)
class Reading:
    """One field: ``status`` is OK (``value`` holds it), NOT_SUPPORTED or ERROR (``detail`` says
    why)."""

    status: str
    value: Any = None
    detail: str | None = None

    @classmethod
    def of(cls, value: Any) -> Reading:
        if isinstance(value, dict):
            raise TypeError("a reading's value cannot be a mapping (it would read as a status)")
        return cls(OK, value)

    @classmethod
    def not_supported(cls, detail: str | None = None) -> Reading:
        return cls(NOT_SUPPORTED, None, detail)

    @classmethod
    def error(cls, detail: str) -> Reading:
        return cls(ERROR, None, detail)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_json(self) -> Any:
        if self.ok:
            return self.value
        return {"status": self.status, **({"detail": self.detail} if self.detail else {})}

    def canonical(self) -> Any:
        """The form that digests and profile comparisons use: error texts left out, so the same
        configuration gives the same digest whatever wording a driver uses."""
        return self.value if self.ok else {"status": self.status}

    @classmethod
    def from_json(cls, data: Any) -> Reading:
        if isinstance(data, dict):
            status = data.get("status")
            if status not in (NOT_SUPPORTED, ERROR):
                raise ValueError(f"not a reading: {data!r}")
            return cls(status, None, data.get("detail"))
        return cls(OK, data)

    def __str__(self) -> str:
        if self.ok:
            return "-" if self.value is None else str(self.value)
        if self.status == NOT_SUPPORTED:
            return "not supported"
        return f"error ({self.detail})" if self.detail else "error"


def describe(canonical: Any) -> str:
    """A canonical form (value or status object) as text for tables and difference lists."""
    if isinstance(canonical, dict):
        return canonical.get("status", "?").replace("_", " ")
    if isinstance(canonical, str):
        return repr(canonical)
    return str(canonical)
