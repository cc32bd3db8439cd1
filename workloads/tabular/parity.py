"""tabular's JAX-to-PyTorch transfer for the parity harness: the common MLP's
(``Dense_<i>`` -> ``net.layer<i+1>``)."""

from algoperf.workloads.common.parity import mlp as jax_to_pytorch

__all__ = ["jax_to_pytorch"]
