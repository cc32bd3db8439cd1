"""Reference profiles and the field-by-field comparison of a fingerprint against one.

A profile (``algoperf/hardware/profiles/<name>.json``, or any JSON file given by path) lists
fields with a check: ``exact`` (the canonical reading must equal ``value``, which may be a
status such as ``{"status": "not_supported"}``), ``range`` (a number within ``min``/``max``,
inclusive, either optional) or ``audit`` (recorded and shown, never enforced). A ``gpu.<f>``
rule applies to every GPU; fields a profile does not name are not checked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from algoperf.errors import UserError
from algoperf.hardware.fingerprint import SECTIONS, Fingerprint, take_fingerprint
from algoperf.hardware.readings import Reading, describe

log = logging.getLogger(__name__)

EXACT, RANGE, AUDIT = "exact", "range", "audit"
CHECKS = (EXACT, RANGE, AUDIT)


@dataclasses.dataclass(frozen=True)
class Rule:
    field: str  # "system.<f>", "gpu.<f>" (every GPU), "topology.<f>" or "host.<f>"
    check: str
    value: Any = None
    min: float | None = None
    max: float | None = None
    has_value: bool = False

    def expected(self) -> str:
        if self.check == RANGE:
            if self.min is not None and self.max is not None:
                return f"in [{self.min}, {self.max}]"
            return f">= {self.min}" if self.min is not None else f"<= {self.max}"
        return _describe(self.value) if self.has_value else "(recorded)"

    def holds(self, reading: Reading) -> bool:
        if self.check == RANGE:
            v = reading.value
            return (reading.ok and isinstance(v, int | float) and not isinstance(v, bool)
                    and (self.min is None or v >= self.min)
                    and (self.max is None or v <= self.max))
        if self.check == AUDIT and not self.has_value:
            return True
        return reading.canonical() == self.value


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    description: str
    rules: str | None  # the rules version whose budgets this hardware defines; None: any
    source: str
    fields: tuple[Rule, ...]


@dataclasses.dataclass(frozen=True)
class Difference:
    """A field whose reading fails its rule; ``enforced`` is False for audit-only fields."""

    field: str
    check: str
    expected: str  # the rule as text ("8", ">= 32", "in [a, b]")
    actual: Any  # the canonical reading
    enforced: bool
    expected_value: Any = None  # an exact or audit rule's value

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def profile_names() -> list[str]:
    folder = resources.files("algoperf.hardware").joinpath("profiles")
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir()
                  if p.name.endswith(".json"))


def load_profile(name: str) -> Profile:
    """A bundled profile by name, or a profile JSON file by path."""
    if name.endswith(".json") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"no profile file {name}")
        text, where = path.read_text(), str(path)
    else:
        if name not in profile_names():
            raise UserError(f"unknown reference profile {name!r}; choose one of "
                            f"{', '.join(profile_names())} or give a profile .json file")
        text = (resources.files("algoperf.hardware").joinpath("profiles")
                .joinpath(f"{name}.json").read_text())
        where = f"profile {name}"
    try:
        return _parse_profile(json.loads(text), where)
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{where} is not a valid reference profile: {e}") from None


def _parse_profile(data: dict[str, Any], where: str) -> Profile:
    rules = []
    for field, spec in data["fields"].items():
        section, _, name = field.partition(".")
        if name not in SECTIONS.get(section, {}):
            raise ValueError(f"unknown field {field!r}")
        if spec.get("check") not in CHECKS:
            raise ValueError(f"{field}: check must be one of {', '.join(CHECKS)}")
        if spec["check"] == RANGE and spec.get("min") is None and spec.get("max") is None:
            raise ValueError(f"{field}: a range needs min or max")
        if spec["check"] == EXACT and "value" not in spec:
            raise ValueError(f"{field}: an exact check needs a value")
        rules.append(Rule(field, spec["check"], spec.get("value"), spec.get("min"),
                          spec.get("max"), "value" in spec))
    return Profile(data.get("name", where), data.get("description", ""), data.get("rules"),
                   data.get("source", ""), tuple(rules))


def compare(fingerprint: Fingerprint, profile: Profile) -> list[Difference]:
    """Every field that fails its rule, enforced ones first, in the profile's order."""
    fields = fingerprint.fields()
    differences = []
    for rule in profile.fields:
        if rule.field.startswith("gpu."):
            name = rule.field.partition(".")[2]
            targets = [f"gpu.{i}.{name}" for i in range(len(fingerprint.gpus))]
        else:
            targets = [rule.field]
        for target in targets:
            reading = fields.get(target, Reading.error("field missing from the fingerprint"))
            if not rule.holds(reading):
                differences.append(Difference(target, rule.check, rule.expected(),
                                              reading.canonical(), rule.check != AUDIT,
                                              rule.value))
    return sorted(differences, key=lambda d: not d.enforced)


@dataclasses.dataclass(frozen=True)
class ReferenceCheck:
    """A fingerprint and how it compares with the reference profile (None: no reference)."""

    fingerprint: Fingerprint
    profile: Profile | None
    differences: tuple[Difference, ...]

    @property
    def mismatches(self) -> list[Difference]:
        return [d for d in self.differences if d.enforced]

    @property
    def certifiable(self) -> bool:
        """True only when a reference was given and every enforced field matched it."""
        return self.profile is not None and not self.mismatches

    def event_data(self) -> dict[str, Any]:
        """What a run_start (or resume) event records about the hardware."""
        return {
            "fingerprint": self.fingerprint.to_json(),
            "fingerprint_digest": self.fingerprint.digest(),
            "reference": self.profile.name if self.profile else None,
            "certifiable": self.certifiable,
            "reference_differences": [d.to_json() for d in self.differences],
        }

    def report(self) -> str:
        """The comparison as text: a headline, then one line per differing field."""
        if self.profile is None:
            return "no reference profile given: the run is not certifiable"
        mismatches = format_differences(self.mismatches)
        if self.fingerprint.nvml_problem and mismatches:
            head = (f"this machine does not match reference profile {self.profile.name}: "
                    f"{self.fingerprint.nvml_problem[1]}")
        elif mismatches:
            head = (f"this machine does not match reference profile {self.profile.name} "
                    f"in {len(mismatches)} field(s):")
        else:
            head = f"this machine matches reference profile {self.profile.name}"
        lines = [head, *mismatches]
        audit = [d for d in self.differences if not d.enforced]
        if audit:
            lines.append("audit-only differences (recorded, not enforced):")
            lines += format_differences(audit)
        return "\n".join(lines)


class ReferenceMismatch(UserError):
    """The machine is not the reference configuration and --allow-nonreference was not given."""

    def __init__(self, check: ReferenceCheck) -> None:
        super().__init__(check.report() + "\nrun on the reference machine, choose another "
                         "--reference, or pass --allow-nonreference to run anyway (the run is "
                         "then marked non-certifiable)")
        self.check = check


def compare_with(profile_name: str | None, rules: str | None = None,
                 fingerprint: Fingerprint | None = None) -> ReferenceCheck:
    """Fingerprints this machine (unless given) and compares it with ``profile_name`` (None: no
    reference); never raises for a mismatch. ``rules`` (a run's rules version) must be the one
    the profile is the reference for."""
    profile = load_profile(profile_name) if profile_name is not None else None
    if profile is not None and rules is not None and profile.rules not in (None, rules):
        raise UserError(f"reference profile {profile.name} defines the hardware of rules "
                        f"{profile.rules}, not {rules}; pass --rules {profile.rules} or choose "
                        "another --reference")
    fingerprint = fingerprint if fingerprint is not None else take_fingerprint()
    differences = tuple(compare(fingerprint, profile)) if profile is not None else ()
    return ReferenceCheck(fingerprint, profile, differences)


def check_reference(profile_name: str | None, allow_nonreference: bool = False,
                    rules: str | None = None,
                    fingerprint: Fingerprint | None = None) -> ReferenceCheck:
    """Enforces the reference configuration before a run (`algoperf run`, `algoperf docker
    run`): fingerprints this machine and compares it with ``profile_name`` (None: no reference,
    nothing enforced, the run is not certifiable).

    Raises `ReferenceMismatch` (a UserError listing the field-by-field difference) when an
    enforced field differs, unless ``allow_nonreference``; then it logs a warning and the
    returned check has ``certifiable`` False. Record ``check.event_data()`` in the run's log.
    """
    check = compare_with(profile_name, rules, fingerprint)
    if check.mismatches:
        if not allow_nonreference:
            raise ReferenceMismatch(check)
        log.warning("%s\n--allow-nonreference: running anyway; the run is marked "
                    "non-certifiable", check.report())
    return check


def format_differences(differences: Iterable[Difference]) -> list[str]:
    """One line per field; the same difference on several GPUs shares a line (gpu[0-7].f)."""
    groups: dict[tuple[str, str], tuple[Difference, list[int]]] = {}
    for d in differences:
        section, *rest = d.field.split(".")
        index = int(rest[0]) if section == "gpu" else -1
        name = f"gpu.{rest[1]}" if section == "gpu" else d.field
        key = (name, json.dumps([d.expected, d.actual]))
        groups.setdefault(key, (d, []))[1].append(index)
    rows = []
    for (name, _), (d, indices) in groups.items():
        if name.startswith("gpu."):
            name = f"gpu[{_ranges(indices)}].{name[4:]}"
        rows.append((name, _difference_text(d)))
    width = max((len(r[0]) for r in rows), default=0)
    return [f"  {name:<{width}}  {text}" for name, text in rows]


def _difference_text(d: Difference) -> str:
    expected, actual = d.expected_value, d.actual
    if _is_matrix(expected) and _is_matrix(actual) and len(expected) == len(actual):
        cells = [(i, j, e, a) for i, (row_e, row_a) in enumerate(zip(expected, actual, strict=True))
                 for j, (e, a) in enumerate(zip(row_e, row_a, strict=False)) if e != a]
        shown = "; ".join(f"GPU{i}-GPU{j} expected {e}, found {a}" for i, j, e, a in cells[:3])
        more = f" (and {len(cells) - 3} more pairs)" if len(cells) > 3 else ""
        return shown + more
    return f"expected {d.expected}, found {_describe(actual)}"


def _is_matrix(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(row, list) for row in value) and value


def _describe(value: Any) -> str:
    if _is_matrix(value):
        return f"{len(value)}x{len(value[0])} matrix"
    return describe(value)


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    parts, start = [], None
    for n, i in enumerate(indices):
        if start is None:
            start = i
        if n + 1 == len(indices) or indices[n + 1] != i + 1:
            parts.append(str(start) if start == i else f"{start}-{i}")
            start = None
    return ",".join(parts)
