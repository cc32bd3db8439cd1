"""Trial checkpoints: save after each eval, restore after a preemption.

A checkpoint holds what AlgoPerf's does (params, optimizer state, model state, the runner's
train_state, eval results, global step, preemption count) in ``trial_<i>/checkpoint_<step>``.
It is written to a temporary name and renamed, so a kill mid-write never leaves a checkpoint
that looks complete. JAX states go through flax.serialization (msgpack) and are restored into
the freshly initialised templates; PyTorch states through ``torch.save`` of state dicts.

An optimizer state those cannot write falls back to a general serializer: a JAX optimizer
state flax cannot write (an object of the submission's own class, say) is pickled; a PyTorch
``optimizer_state`` entry without ``state_dict()`` is pickled as an object, its references to
the live model, parameters, buffers and the other entries kept as references (restored into
the new trial's). An entry without ``state_dict()`` that does not pickle (a lambda, a lock) is
left out, as before, and keeps the value ``init_optimizer_state`` gives it on restore. When
nothing can write the state, `save` raises `Unserializable` and writes nothing.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import pickle
import re
from pathlib import Path
from typing import Any

from algoperf.logs.atomic import write_atomic

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^checkpoint_(\d+)$")
PICKLE = "pickle"  # the "optimizer_format" of a JAX optimizer state written by pickle
_left_out: set[tuple[str, str]] = set()  # (trial dir, entry) already warned about


class Unserializable(Exception):
    """No serializer can write the trial's state; the message says what failed, in one line.
    Nothing was written."""


def _why(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


@dataclasses.dataclass
class TrainingState:
    """Everything a trial needs to continue: what the runner saves and restores."""

    params: Any
    optimizer_state: Any
    model_state: Any
    train_state: dict[str, Any]
    eval_results: list[tuple[int, dict[str, Any]]]
    global_step: int
    preemption_count: int


def latest_checkpoint(trial_dir: Path) -> Path | None:
    """The checkpoint with the largest step in ``trial_dir``, if any."""
    found = [(int(m.group(1)), p) for p in trial_dir.iterdir() if (m := _NAME.match(p.name))]
    return max(found)[1] if found else None


def _split_optimizer_state(optimizer_state: Any) -> tuple[Any, Any]:
    """AlgoPerf's JAX convention: (opt_state, update_fn); only opt_state is saved."""
    if isinstance(optimizer_state, tuple) and len(optimizer_state) == 2 and callable(
        optimizer_state[1]
    ):
        return optimizer_state[0], optimizer_state[1]
    return optimizer_state, None


def _bookkeeping(state: TrainingState) -> str:
    return json.dumps({
        "train_state": state.train_state,
        "eval_results": [[step, result] for step, result in state.eval_results],
        "global_step": state.global_step,
        "preemption_count": state.preemption_count,
    })


def save(trial_dir: Path, framework: str, state: TrainingState, keep_intermediate: bool) -> Path:
    """Writes ``checkpoint_<global_step>``; without ``keep_intermediate`` older ones go."""
    path = trial_dir / f"checkpoint_{state.global_step}"
    data = _jax_bytes(state) if framework == "jax" else _torch_bytes(trial_dir, state)
    write_atomic(path, data)
    if not keep_intermediate:
        for old in trial_dir.iterdir():
            if _NAME.match(old.name) and old != path:
                old.unlink()
    return path


def _jax_bytes(state: TrainingState) -> bytes:
    """msgpack of flax state dicts; an optimizer state flax cannot write goes in pickled."""
    import flax.serialization
    import jax
    import numpy as np

    opt_state, _ = _split_optimizer_state(state.optimizer_state)
    to_dict = flax.serialization.to_state_dict
    payload = {"model_params": to_dict(state.params), "model_state": to_dict(state.model_state)}
    payload = {**jax.tree_util.tree_map(np.asarray, payload), "bookkeeping": _bookkeeping(state)}
    try:
        optimizer = jax.tree_util.tree_map(np.asarray, to_dict(opt_state))
        return flax.serialization.msgpack_serialize({**payload, "optimizer_state": optimizer})
    except Exception as e:  # noqa: BLE001 - whatever the submission's objects raise
        flax_error = e
    try:
        optimizer = pickle.dumps(opt_state, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001
        raise Unserializable(f"the optimizer state cannot be serialized: flax.serialization "
                             f"failed ({_why(flax_error)}) and so did pickle ({_why(e)})") from e
    try:
        return flax.serialization.msgpack_serialize(
            {**payload, "optimizer_state": optimizer, "optimizer_format": PICKLE})
    except Exception as e:  # noqa: BLE001
        raise Unserializable(f"the model state cannot be serialized ({_why(e)})") from e


def _torch_live(params: Any, optimizer_state: dict) -> dict[tuple, Any]:
    """The live objects a pickled optimizer_state entry may refer to, by a stable name."""
    model = params.module if hasattr(params, "module") else params
    live = {("params",): params, ("model",): model}
    live.update({("parameter", n): p for n, p in model.named_parameters()})
    live.update({("buffer", n): b for n, b in model.named_buffers()})
    live.update({("entry", k): v for k, v in optimizer_state.items() if hasattr(v, "state_dict")})
    return live


class _Pickler(pickle.Pickler):
    def __init__(self, file, live: dict[tuple, Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._ids = {id(obj): name for name, obj in live.items()}

    def persistent_id(self, obj):
        return self._ids.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, live: dict[tuple, Any]) -> None:
        super().__init__(file)
        self._live = live

    def persistent_load(self, pid):
        try:
            return self._live[tuple(pid)]
        except KeyError:
            raise pickle.UnpicklingError(f"the checkpoint refers to {pid}, which this trial's "
                                         "model and optimizer do not have") from None


def _torch_bytes(trial_dir: Path, state: TrainingState) -> bytes:
    """torch.save of the state dicts, and of the entries without state_dict() as objects."""
    import torch

    model = state.params.module if hasattr(state.params, "module") else state.params
    entries = state.optimizer_state or {}
    live = _torch_live(state.params, entries)
    optimizer, objects = {}, {}
    for key, value in entries.items():
        if hasattr(value, "state_dict"):
            optimizer[key] = value.state_dict()
            continue
        buffer = io.BytesIO()
        try:
            _Pickler(buffer, live).dump(value)
        except Exception as e:  # noqa: BLE001 - a lambda, a lock: init_optimizer_state's on restore
            if (str(trial_dir), str(key)) not in _left_out:
                _left_out.add((str(trial_dir), str(key)))
                logger.warning("optimizer_state[%r] cannot be pickled (%s): not checkpointed; "
                               "a resumed trial gets the one init_optimizer_state makes", key,
                               _why(e))
            continue
        objects[key] = buffer.getvalue()
    payload = {
        "model_params": model.state_dict(),
        "optimizer_state": optimizer,
        "optimizer_objects": objects,
        "bookkeeping": _bookkeeping(state),
    }
    buffer = io.BytesIO()
    try:
        torch.save(payload, buffer)
    except Exception as e:  # noqa: BLE001 - whatever a state_dict() holds
        raise Unserializable(f"the optimizer state cannot be serialized by torch.save "
                             f"({_why(e)})") from e
    return buffer.getvalue()


def restore(path: Path, framework: str, template: TrainingState) -> TrainingState:
    """Loads ``path`` into the freshly initialised ``template`` of the same trial."""
    if framework == "jax":
        import flax.serialization

        payload = flax.serialization.msgpack_restore(path.read_bytes())
        opt_state, update_fn = _split_optimizer_state(template.optimizer_state)
        if payload.get("optimizer_format") == PICKLE:
            opt_state = _placed_like(opt_state, pickle.loads(payload["optimizer_state"]))
        else:
            opt_state = flax.serialization.from_state_dict(opt_state, payload["optimizer_state"])
        params = flax.serialization.from_state_dict(template.params, payload["model_params"])
        model_state = flax.serialization.from_state_dict(
            template.model_state, payload["model_state"]
        )
        optimizer_state = (opt_state, update_fn) if update_fn is not None else opt_state
    else:
        import torch

        payload = torch.load(path, map_location="cpu", weights_only=False)
        params = template.params
        model = params.module if hasattr(params, "module") else params
        model.load_state_dict(payload["model_params"])
        optimizer_state = template.optimizer_state
        for key, value in payload["optimizer_state"].items():
            optimizer_state[key].load_state_dict(value)
        live = _torch_live(params, optimizer_state)
        for key, data in payload.get("optimizer_objects", {}).items():
            optimizer_state[key] = _Unpickler(io.BytesIO(data), live).load()
        model_state = template.model_state
    book = json.loads(payload["bookkeeping"])
    return TrainingState(
        params=params,
        optimizer_state=optimizer_state,
        model_state=model_state,
        train_state=book["train_state"],
        eval_results=[(step, result) for step, result in book["eval_results"]],
        global_step=book["global_step"],
        preemption_count=book["preemption_count"],
    )


def _placed_like(template: Any, restored: Any) -> Any:
    """``restored`` with each array on the devices of the template's array in its place (as
    the freshly initialised state is); as unpickled when the structures differ."""
    import jax

    def place(t, r):
        return jax.device_put(r, t.sharding) if isinstance(t, jax.Array) and hasattr(
            r, "shape") else r

    try:
        return jax.tree_util.tree_map(place, template, restored)
    except (ValueError, TypeError):
        return restored
