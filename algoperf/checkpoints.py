"""Trial checkpoints: save after each eval, restore after a preemption.

A checkpoint holds what AlgoPerf's does (params, optimizer state, model state, the runner's
train_state, eval results, global step, preemption count) in ``trial_<i>/checkpoint_<step>``.
It is written to a temporary name and renamed, so a kill mid-write never leaves a checkpoint
that looks complete. JAX states go through flax.serialization (msgpack) and are restored into
the freshly initialised templates; PyTorch states through ``torch.save`` of state dicts.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
from pathlib import Path
from typing import Any

from algoperf.logs.atomic import write_atomic

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^checkpoint_(\d+)$")


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
    if framework == "jax":
        import flax.serialization
        import jax
        import numpy as np

        opt_state, _ = _split_optimizer_state(state.optimizer_state)
        arrays = {
            "model_params": flax.serialization.to_state_dict(state.params),
            "optimizer_state": flax.serialization.to_state_dict(opt_state),
            "model_state": flax.serialization.to_state_dict(state.model_state),
        }
        payload = {**jax.tree_util.tree_map(np.asarray, arrays),
                   "bookkeeping": _bookkeeping(state)}
        data = flax.serialization.msgpack_serialize(payload)
        write_atomic(path, data)
    else:
        import torch

        model = state.params.module if hasattr(state.params, "module") else state.params
        optimizer = {}
        for key, value in (state.optimizer_state or {}).items():
            if hasattr(value, "state_dict"):
                optimizer[key] = value.state_dict()
            else:
                logger.warning("optimizer_state[%r] has no state_dict(); not checkpointed", key)
        payload = {
            "model_params": model.state_dict(),
            "optimizer_state": optimizer,
            "bookkeeping": _bookkeeping(state),
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        write_atomic(path, buffer.getvalue())
    if not keep_intermediate:
        for old in trial_dir.iterdir():
            if _NAME.match(old.name) and old != path:
                old.unlink()
    return path


def restore(path: Path, framework: str, template: TrainingState) -> TrainingState:
    """Loads ``path`` into the freshly initialised ``template`` of the same trial."""
    if framework == "jax":
        import flax.serialization

        payload = flax.serialization.msgpack_restore(path.read_bytes())
        opt_state, update_fn = _split_optimizer_state(template.optimizer_state)
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
