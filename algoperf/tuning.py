"""Hyperparameter search spaces, Halton quasirandom points and per-trial seeds.

The external-tuning ruleset gives a submission's search space as JSON, in one of two forms:

* dict form ``{name: {"min": a, "max": b, "scaling": "log"|"linear"}}`` or
  ``{name: {"feasible_points": [...]}}``: points come from AlgoPerf's scrambled Halton sequence;
* list form ``[{name: value, ...}, ...]``: fixed configurations, used in file order.

A point is AlgoPerf's ``Hyperparameters`` namedtuple (fields = JSON keys in JSON order), the object
every submission function receives. The set of Halton points equals AlgoPerf's (``halton.py``) bit
for bit; their ORDER differs on purpose: AlgoPerf shuffles it with NumPy's unseeded global RNG
(reference §2.16 quirk 3), so two processes slicing the same search could disagree on which trial
gets which point. Here the order is a permutation drawn from a Generator seeded by the caller.
Trials get their points block by block (``assign_trials``): the rules' grid of studies x trials
gets AlgoPerf's points, and a trial's point does not depend on how many trials are drawn.

Seeds for studies and trials come from ``derive_seed`` (sha256), not from Python's ``hash()``,
which is salted per process (AlgoPerf's ``run_workloads.py`` quirk, reference §4.8).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import keyword
import logging
import math
import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from algoperf.errors import UserError

logger = logging.getLogger(__name__)

HALTON_SKIP = 100  # leading Halton points AlgoPerf drops (they correlate across dimensions)
SCALINGS = ("log", "linear")
_CONTINUOUS_KEYS = frozenset({"min", "max", "scaling"})
_DISCRETE_KEYS = frozenset({"feasible_points"})


# --- the Hyperparameters namedtuple ---------------------------------------------------------------


@functools.cache
def _hyperparameters_class(names: tuple[str, ...]) -> type:
    return collections.namedtuple("Hyperparameters", names)


def make_hyperparameters(values: Mapping[str, Any]) -> tuple:
    """AlgoPerf's ``Hyperparameters`` namedtuple with one field per key, in the mapping's order.

    Equal key sequences share one class, so points of one search space have the same type.
    """
    return _hyperparameters_class(tuple(values))(**values)


def hparams_to_json(hp: tuple) -> str:
    """The text AlgoPerf writes to ``trial_<k>/hparams.json``: the fields as a JSON object."""
    return json.dumps(hp._asdict(), indent=2)


def hparams_from_json(text: str, source: str = "hparams.json") -> tuple:
    """Rebuild the namedtuple from ``hparams.json`` text (values round-trip exactly)."""
    obj = _parse_json(text, source)
    if not isinstance(obj, dict) or not obj:
        raise UserError(
            f"{source}: expected a non-empty JSON object of hyperparameters, got "
            f"{_json_type(obj)}; rewrite it or delete it to regenerate the trial's hyperparameters"
        )
    for name in obj:
        _check_name(name, source)
    return make_hyperparameters(obj)


# --- Halton sequence (AlgoPerf's construction) ----------------------------------------------------


def odd_primes_below(bound: int) -> list[int]:
    """The primes ``3 <= p < bound`` (AlgoPerf's Sieve of Sundaram leaves 2 out)."""
    is_prime = np.ones(max(bound, 3), dtype=bool)
    is_prime[:3] = False  # 0, 1 and 2
    is_prime[4::2] = False
    for p in range(3, math.isqrt(len(is_prime) - 1) + 1, 2):
        if is_prime[p]:
            is_prime[p * p :: p] = False
    return [int(p) for p in np.flatnonzero(is_prime)]


def halton_primes(num_dims: int) -> list[int]:
    """The per-dimension bases: the ``num_dims`` largest odd primes below 1000 except the largest
    (997), e.g. 947, 953, 967, 971, 977, 983, 991 for seven. Like AlgoPerf, the bound grows by
    1000 until it has more than ``num_dims`` odd primes below it."""
    bound = 1000
    primes = odd_primes_below(bound)
    while len(primes) < num_dims + 1:
        bound += 1000
        primes = odd_primes_below(bound)
    return primes[-num_dims - 1 : -1]


def scrambled_van_der_corput(num_points: int, base: int, skip: int = HALTON_SKIP) -> np.ndarray:
    """Points ``skip+1 .. skip+num_points`` of a scrambled, shifted Van der Corput sequence.

    The digit scramble (0 kept, 1..base-1 permuted) and the shift in [0, 1) come from
    ``RandomState(base)``, as in AlgoPerf; the digit terms are added in the same order so the
    floats are identical to AlgoPerf's.
    """
    rng = np.random.RandomState(base)
    digits = np.arange(1, base)
    rng.shuffle(digits)
    scramble = np.concatenate([[0], digits])
    shift = rng.random_sample()

    index = np.arange(skip + 1, skip + num_points + 1, dtype=np.int64)
    value = np.zeros(num_points)
    denominator = base
    while index.any():
        value += scramble[index % base] / denominator
        denominator *= base
        index //= base
    return np.fmod(value + shift, 1.0)


def halton_sequence(num_points: int, num_dims: int, skip: int = HALTON_SKIP) -> np.ndarray:
    """AlgoPerf's Halton points in [0, 1)^num_dims as a ``(num_points, num_dims)`` array, in
    sequence order (unshuffled)."""
    columns = [scrambled_van_der_corput(num_points, p, skip) for p in halton_primes(num_dims)]
    return np.stack(columns, axis=1) if columns else np.zeros((num_points, 0))


# --- search spaces --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Continuous:
    """A real interval, sampled uniformly on a log or linear scale."""

    name: str
    min: float
    max: float
    scaling: str  # "log" or "linear"

    def value(self, u: float) -> float:
        """Map ``u`` in [0, 1) into the interval (AlgoPerf's float expressions, same rounding)."""
        if self.scaling == "log":
            return self.min * math.exp(u * math.log(self.max / self.min))
        return u * (self.max - self.min) + self.min


@dataclasses.dataclass(frozen=True)
class Discrete:
    """A list of feasible values, each taking an equal share of [0, 1)."""

    name: str
    feasible_points: tuple

    def value(self, u: float) -> Any:
        return self.feasible_points[math.floor(u * len(self.feasible_points))]


@dataclasses.dataclass(frozen=True, eq=False)
class SearchSpace:
    """A validated search space: ``dimensions`` (dict form) or ``entries`` (list form)."""

    names: tuple[str, ...]
    dimensions: tuple[Continuous | Discrete, ...] = ()
    entries: tuple[dict, ...] = ()
    source: str = "search space"

    @property
    def is_list(self) -> bool:
        """True for a fixed list of configurations, False for a Halton-sampled space."""
        return bool(self.entries)

    def points(self, n: int, seed: int) -> list[tuple]:
        """``n`` hyperparameter points.

        Dict form: AlgoPerf's ``n`` Halton points, in an order shuffled by ``seed`` (the set does
        not depend on the seed). List form: the first ``min(n, len)`` entries in file order.
        """
        if n < 0:
            raise ValueError(f"number of points must be >= 0, got {n}")
        if self.is_list:
            if n != len(self.entries):
                logger.warning(
                    "%s: %d trial(s) requested but the list holds %d; using the first %d",
                    self.source,
                    n,
                    len(self.entries),
                    min(n, len(self.entries)),
                )
            return [make_hyperparameters(e) for e in self.entries[:n]]
        cube = halton_sequence(n, len(self.dimensions))
        order = np.random.default_rng(seed).permutation(n)
        return [self._point(row) for row in cube[order]]

    def _point(self, row: np.ndarray) -> tuple:
        """The hyperparameters at one point of the unit cube."""
        return make_hyperparameters(
            {d.name: d.value(float(u)) for d, u in zip(self.dimensions, row, strict=True)}
        )

    def block(self, index: int, size: int, seed: int) -> list[tuple]:
        """Block ``index`` of the Halton sequence cut into blocks of ``size`` points (block 0:
        AlgoPerf's first ``size`` points), in an order shuffled by ``seed``. Block 0 is
        ``points(size, seed)``; block ``b > 0`` is shuffled by the Generator of ``(seed, b)``."""
        cube = halton_sequence(size, len(self.dimensions), skip=HALTON_SKIP + index * size)
        rng = np.random.default_rng(seed if index == 0 else (seed, index))
        return [self._point(row) for row in cube[rng.permutation(size)]]


def assign_trials(
    space: SearchSpace, num_studies: int, num_trials: int, seed: int, *, block: tuple[int, int]
) -> list[list[tuple]]:
    """Hyperparameters per study and trial (``[study][trial]``), the external tuning protocol.

    Dict form: the Halton sequence is cut into blocks of ``block = (studies, trials)`` points,
    the rules version's grid (3 x 5 = 15 under v0.6). Each block is shuffled by the seed and
    dealt to its cells study by study, in consecutive chunks: block 0 holds trials
    ``1..trials`` of studies ``0..studies-1``, so the rules' grid gets AlgoPerf's 15 points
    with disjoint points per study. Later trials and studies take later blocks (study group
    ``g``, trial round ``r``: block ``(g + r)(g + r + 1)/2 + r``). The point of study ``k``,
    trial ``i`` therefore depends on the space, the seed and ``block`` only -- never on
    ``num_studies`` or ``num_trials`` -- and no two trials share a point: a 2-trial draw is the
    first two trials of the 5-trial one. List form: every study gets the list's first
    ``num_trials`` entries, as AlgoPerf's baselines do.
    """
    if space.is_list:
        trials = space.points(num_trials, seed)
        return [list(trials) for _ in range(num_studies)]
    block_studies, block_trials = block
    if block_studies < 1 or block_trials < 1:
        raise ValueError(f"a block needs at least one study and one trial, got {block}")
    size = block_studies * block_trials
    blocks: dict[int, list[tuple]] = {}

    def point(study: int, trial: int) -> tuple:
        group, row = divmod(study, block_studies)
        round_, column = divmod(trial, block_trials)
        index = (group + round_) * (group + round_ + 1) // 2 + round_  # Cantor pairing
        if index not in blocks:
            blocks[index] = space.block(index, size, seed)
        return blocks[index][row * block_trials + column]

    return [[point(k, i) for i in range(num_trials)] for k in range(num_studies)]


def load_search_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space JSON file; any problem is one ``UserError`` line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: search space file not found; check the path") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory; pass the search space JSON file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason}); save it as UTF-8 JSON") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the search space ({e.strerror})") from None
    return parse_search_space(_parse_json(text, str(path)), source=str(path))


def parse_search_space(obj: Any, source: str = "search space") -> SearchSpace:
    """Validate a decoded search space (dict or list form); ``source`` names it in errors."""
    if isinstance(obj, dict):
        if not obj:
            raise UserError(f"{source}: the search space is empty; add at least one hyperparameter")
        dims = tuple(_parse_dimension(name, spec, source) for name, spec in obj.items())
        return SearchSpace(names=tuple(obj), dimensions=dims, source=source)
    if isinstance(obj, list):
        if not obj:
            raise UserError(f"{source}: the list of configurations is empty; add at least one")
        entries = tuple(_parse_entry(i, entry, obj[0], source) for i, entry in enumerate(obj))
        return SearchSpace(names=tuple(entries[0]), entries=entries, source=source)
    raise UserError(
        f"{source}: the top level is {_json_type(obj)}; write an object "
        '{"name": {"min": .., "max": .., "scaling": ..}} or a list of {"name": value} objects'
    )


def _parse_dimension(name: str, spec: Any, source: str) -> Continuous | Discrete:
    _check_name(name, source)
    where = f"{source}: hyperparameter '{name}'"
    if not isinstance(spec, dict):
        raise UserError(
            f"{where} is {_json_type(spec)}; give "
            '{"min": .., "max": .., "scaling": "log"|"linear"} or {"feasible_points": [..]}'
        )
    keys = set(spec)
    unknown = keys - _CONTINUOUS_KEYS - _DISCRETE_KEYS
    if unknown:
        raise UserError(
            f"{where} has unknown key(s) {_names(unknown)}; allowed: min, max, scaling "
            "(continuous) or feasible_points (discrete)"
        )
    if "feasible_points" in keys:
        if keys != _DISCRETE_KEYS:
            raise UserError(
                f"{where} mixes feasible_points with {_names(keys - _DISCRETE_KEYS)}; "
                "use either feasible_points or min/max/scaling"
            )
        points = spec["feasible_points"]
        if not isinstance(points, list):
            raise UserError(f"{where}: feasible_points is {_json_type(points)}; make it a list")
        if not points:
            raise UserError(f"{where}: feasible_points is empty; list at least one value")
        return Discrete(name, tuple(points))
    missing = _CONTINUOUS_KEYS - keys
    if missing:
        raise UserError(
            f"{where} is missing {_names(missing)}; give min, max and scaling "
            '("log" or "linear"), or feasible_points'
        )
    lo, hi = _bound(where, "min", spec["min"]), _bound(where, "max", spec["max"])
    scaling = spec["scaling"]
    if scaling not in SCALINGS:
        raise UserError(f'{where}: scaling is {json.dumps(scaling)}; use "log" or "linear"')
    if lo > hi:
        raise UserError(f"{where}: min ({lo!r}) > max ({hi!r}); swap them")
    if scaling == "log" and lo <= 0:
        raise UserError(
            f"{where}: log scaling needs min > 0, got min={lo!r}; raise min or use linear scaling"
        )
    return Continuous(name, lo, hi, scaling)


def _bound(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where}: {key} is {_json_type(value)}; write a number (no quotes)")
    if not math.isfinite(value):
        raise UserError(f"{where}: {key} is {value}; bounds must be finite numbers")
    return value


def _parse_entry(index: int, entry: Any, first: Any, source: str) -> dict:
    where = f"{source}: configuration {index}"
    if not isinstance(entry, dict) or not entry:
        raise UserError(
            f"{where} is {_json_type(entry)}; each entry must be a non-empty "
            '{"name": value, ...} object'
        )
    for name in entry:
        _check_name(name, source)
    if index and set(entry) != set(first):
        missing, extra = set(first) - set(entry), set(entry) - set(first)
        parts = ([f"lacks {_names(missing)}"] if missing else []) + (
            [f"has extra {_names(extra)}"] if extra else []
        )
        raise UserError(
            f"{where} {' and '.join(parts)} compared with configuration 0; "
            "give every configuration the same hyperparameters"
        )
    return {name: entry[name] for name in first}  # field order of the first entry, as AlgoPerf


def _check_name(name: str, source: str) -> None:
    """Namedtuple field names must be identifiers, not keywords, not start with '_'."""
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise UserError(
            f"{source}: hyperparameter name {json.dumps(name)} is not a valid Python identifier; "
            "use letters, digits and '_' (not first), e.g. learning_rate"
        )


def _parse_json(text: str, source: str) -> Any:
    if not text.strip():
        raise UserError(f"{source}: the file is empty; write the JSON object or list into it")
    try:
        return json.loads(text, object_pairs_hook=functools.partial(_no_duplicates, source))
    except json.JSONDecodeError as e:
        raise UserError(
            f"{source}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}; fix the syntax"
        ) from None


def _no_duplicates(source: str, pairs: list[tuple[str, Any]]) -> dict:
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise UserError(f"{source}: key {json.dumps(key)} appears twice; keep one")
        obj[key] = value
    return obj


def _json_type(value: Any) -> str:
    kinds = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    shown = json.dumps(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{kinds.get(type(value), type(value).__name__)} ({shown})"


def _names(names: set[str]) -> str:
    return ", ".join(repr(n) for n in sorted(names))


# --- seeds ----------------------------------------------------------------------------------------

SEED_MODULUS = 2**31 - 1  # AlgoPerf's NumPy key emulation reduces seeds mod 2**31-1: no aliasing


def derive_seed(master_seed: int, *path: str | int) -> int:
    """A seed in ``[0, 2**31 - 2]`` for one node of the run tree, e.g.
    ``derive_seed(7, "study", 0, "workload", "digits", "trial", 1)``.

    sha256 of a canonical JSON encoding of the master seed and the path, so it is the same in
    every process and on every machine; the int 1 and the string "1" are different parts.
    """
    parts = [_seed_part(master_seed, allow_str=False)] + [_seed_part(p) for p in path]
    encoded = json.dumps(["algoperf.derive_seed/1", *parts], separators=(",", ":"))
    digest = hashlib.sha256(encoded.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % SEED_MODULUS


def _seed_part(part: Any, allow_str: bool = True) -> str | int:
    if isinstance(part, str) and allow_str:
        return part
    if isinstance(part, bool):
        raise TypeError(f"seed path parts must be str or int, got bool {part!r}")
    try:
        return operator.index(part)
    except TypeError:
        raise TypeError(
            f"seed path parts must be {'str or ' if allow_str else ''}int, "
            f"got {type(part).__name__} {part!r}"
        ) from None


__all__ = [
    "Continuous",
    "Discrete",
    "SearchSpace",
    "assign_trials",
    "derive_seed",
    "halton_primes",
    "halton_sequence",
    "hparams_from_json",
    "hparams_to_json",
    "load_search_space",
    "make_hyperparameters",
    "odd_primes_below",
    "parse_search_space",
    "scrambled_van_der_corput",
]


# --- trial planning -------------------------------------------------------------------------------


class TrialSelection(Protocol):
    """The part of a run's configuration that says which trials it does (a RunConfig)."""

    rules: str
    ruleset: str
    workload: str
    tuning_search_space: Path | None
    num_studies: int
    study: int | None
    num_tuning_trials: int | None
    hparam_start_index: int | None
    hparam_end_index: int | None


def trial_seed(master_seed: int, workload: str, study: int, trial: int) -> int:
    """The seed of one trial, derived from the run's master seed (never shared, never
    Python's salted hash())."""
    return derive_seed(master_seed, "study", study, "workload", workload, "trial", trial)


def num_trials(selection: TrialSelection) -> int:
    """Trials per study: --num-tuning-trials, else the rules version's (external tuning)."""
    if selection.num_tuning_trials is not None:
        return selection.num_tuning_trials
    from algoperf.workloads import registry

    return registry.get_rules(selection.rules).num_trials


def plan_trials(selection: TrialSelection, seed: int) -> dict[int, list[tuple[int, Any]]]:
    """study -> [(trial number, hyperparameters)] for the studies and trials a run does; the
    runner and the sweep's planner both take their trials from here."""
    from algoperf.workloads import registry

    rules = registry.get_rules(selection.rules)
    studies = ([selection.study] if selection.study is not None
               else list(range(selection.num_studies)))
    if selection.ruleset == "self":
        return {k: [(1, None)] for k in studies}
    space = load_search_space(selection.tuning_search_space)
    per_study = num_trials(selection)
    # Drawn in blocks of the rules' studies x trials, so trial i of study k gets the same point
    # however many studies and trials are asked for (--study k alone, 2 trials or 5), and never
    # shares it with another trial.
    assigned = assign_trials(space, max(studies) + 1, per_study,
                             derive_seed(seed, "search", selection.workload),
                             block=(rules.num_studies, rules.num_trials))
    lo = selection.hparam_start_index or 0
    hi = selection.hparam_end_index if selection.hparam_end_index is not None else per_study
    return {k: [(i + 1, assigned[k][i]) for i in range(lo, min(hi, len(assigned[k])))]
            for k in studies}
