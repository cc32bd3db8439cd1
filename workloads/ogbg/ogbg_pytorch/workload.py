"""The ogbg workload in PyTorch: the graph network (``models``), the masked sigmoid
cross-entropy and the eval step. Stateless: the model state is None.

A batch's ``inputs`` is a ``GraphsTuple`` of tensors (int64 indices and counts), its
``weights`` booleans as AlgoPerf's. Under DDP every rank builds the same numpy batch (one
padded shard per rank) and keeps its own shard; eval outputs are all-gathered for the mAP.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from algoperf import param_utils, spec
from algoperf.pytorch_utils import pytorch_setup
from algoperf.workloads.common import pipeline
from algoperf.workloads.ogbg import input_pipeline
from algoperf.workloads.ogbg.ogbg_pytorch.models import GNN
from algoperf.workloads.ogbg.workload import DROPOUT_RATE, BaseOgbgWorkload


class OgbgWorkload(BaseOgbgWorkload):
    """ogbg-molpcba with a PyTorch graph network."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._use_ddp, self._rank, self._device, _ = pytorch_setup()

    def _num_shards(self) -> int:
        return dist.get_world_size() if self._use_ddp else 1

    def _to_framework_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        graph = batch["inputs"]
        targets, weights = batch["targets"], batch["weights"]
        if self._use_ddp:
            shards = self._num_shards()
            nodes, edges, graphs = (len(graph.nodes) // shards, len(graph.edges) // shards,
                                    len(graph.n_node) // shards)
            r = self._rank
            offset = r * nodes
            graph = input_pipeline.GraphsTuple(
                graph.nodes[r * nodes:(r + 1) * nodes], graph.edges[r * edges:(r + 1) * edges],
                graph.receivers[r * edges:(r + 1) * edges] - offset,
                graph.senders[r * edges:(r + 1) * edges] - offset, {},
                graph.n_node[r * graphs:(r + 1) * graphs],
                graph.n_edge[r * graphs:(r + 1) * graphs])
            targets = targets[r * graphs:(r + 1) * graphs]
            weights = weights[r * graphs:(r + 1) * graphs]

        def tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(self._device, dtype)

        graph = input_pipeline.GraphsTuple(
            nodes=tensor(graph.nodes, torch.float32), edges=tensor(graph.edges, torch.float32),
            receivers=tensor(graph.receivers, torch.int64),
            senders=tensor(graph.senders, torch.int64), globals={},
            n_node=tensor(graph.n_node, torch.int64), n_edge=tensor(graph.n_edge, torch.int64))
        return {"inputs": graph, "targets": tensor(targets, torch.float32),
                "weights": tensor(weights, torch.bool)}

    def _build_model(self) -> nn.Module:
        return GNN(self.num_outputs, activation_fn_name=self.activation_fn_name,
                   latent_dim=self.latent_dim, hidden_dims=self.hidden_dims,
                   num_message_passing_steps=self.num_message_passing_steps)

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        torch.random.manual_seed(pipeline.seed_from_rng(rng))
        model = self._build_model()
        self._param_shapes = param_utils.pytorch_param_shapes(model)
        self._param_types = param_utils.pytorch_param_types(self._param_shapes)
        model.to(self._device)
        if self._use_ddp:
            device_ids = [self._rank] if self._device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        return model, None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("decoder.weight", "decoder.bias")

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: float = DROPOUT_RATE,
    ) -> tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        """Logits (graphs, 128). EVAL: ``model.eval()`` under ``torch.no_grad()``; TRAIN:
        dropout at ``dropout_rate``. No batch norm."""
        del rng, update_batch_norm
        if model_state is not None:
            raise ValueError(f"ogbg's model has no state; got model_state {model_state!r}")
        model = params
        evaluating = mode == spec.ForwardPassMode.EVAL
        model.train(not evaluating)
        with torch.no_grad() if evaluating else contextlib.nullcontext():
            logits = model(augmented_and_preprocessed_input_batch["inputs"],
                           dropout_rate=dropout_rate)
        return logits, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: spec.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, spec.Tensor]:
        """Masked sigmoid cross-entropy per (graph, task), as AlgoPerf's (see the JAX
        workload): labels smoothed over the 128 tasks, ``n_valid_examples`` the number of
        unmasked entries; a per-graph mask masks all of a graph's tasks."""
        if mask_batch is None:
            mask_batch = torch.ones_like(logits_batch)
        elif mask_batch.ndim == 1:
            mask_batch = mask_batch[:, None].expand(logits_batch.shape)
        if not logits_batch.shape == label_batch.shape == mask_batch.shape:
            raise ValueError(f"logits {tuple(logits_batch.shape)}, targets "
                             f"{tuple(label_batch.shape)} and weights "
                             f"{tuple(mask_batch.shape)} must have one shape")
        valid = mask_batch > 0
        labels = torch.where(valid, label_batch, -1.0)
        labels = (1.0 - label_smoothing) * labels + label_smoothing / labels.shape[-1]
        losses = (torch.clamp(logits_batch, min=0) - logits_batch * labels
                  + torch.log(1 + torch.exp(-torch.abs(logits_batch))))
        per_example = torch.where(valid, losses, 0.0)
        n_valid = mask_batch.sum().to(logits_batch.dtype)
        return {"summed": per_example.sum(), "n_valid_examples": n_valid,
                "per_example": per_example}

    def _eval_outputs(self, params: spec.ParameterContainer, batch: dict[str, Any],
                      model_state: spec.ModelAuxiliaryState) -> tuple[np.ndarray, ...]:
        logits, _ = self.model_fn(params, batch, model_state, spec.ForwardPassMode.EVAL,
                                  None, False)
        outputs = [logits, batch["targets"], batch["weights"].to(torch.float32)]
        if self._use_ddp:
            gathered = []
            for tensor in outputs:
                parts = [torch.zeros_like(tensor) for _ in range(dist.get_world_size())]
                dist.all_gather(parts, tensor.contiguous())
                gathered.append(torch.cat(parts))
            outputs = gathered
        return tuple(t.detach().cpu().numpy().astype(np.float32) for t in outputs)
