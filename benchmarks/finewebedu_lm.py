"""finewebedu_lm: the input pipeline's tokens/s and fused against plain attention, per framework.

- pipeline: training batches of 1,024-token windows from the memory-mapped token stream
  (synthetic, ``--pipeline-tokens`` tokens on disk), as the workload's queue builds them
  (seeded gather of whole windows, per-position rows), without a model: tokens/s.
- attention: one Transformer block of the real width (1024, 8 heads of 128) over
  ``--batch`` windows of ``--length`` tokens, forward and backward, median of ``--repeats``
  after a warm-up (compile), with each framework's fused kernel
  (``jax.nn.dot_product_attention``, ``torch.nn.functional.scaled_dot_product_attention``)
  and with the written-out einsum-softmax-einsum. On a CPU both fused kernels are the
  frameworks' CPU kernels: the GPU's flash attention is not measured here.

Last line: ``finewebedu_lm pipeline_tokens_per_s=<x> jax_fused_ms=... jax_plain_ms=...
torch_fused_ms=... torch_plain_ms=...``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from algoperf.datasets import finewebedu
from algoperf.workloads.common.registered import import_reduced
from algoperf.workloads.finewebedu_lm.finewebedu_lm_jax import models as jax_models
from algoperf.workloads.finewebedu_lm.finewebedu_lm_pytorch import models as torch_models


def pipeline_tokens_per_second(num_tokens: int, batch_size: int, num_batches: int) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        finewebedu.write_synthetic(data_dir, num_train=num_tokens, num_test=1025)
        workload = import_reduced("finewebedu_lm", "pytorch")
        workload.sequence_length = 1024
        queue = workload._build_input_queue(np.zeros(2, np.uint32), "train", data_dir,
                                            batch_size)
        next(queue)
        start = time.perf_counter()
        for _ in range(num_batches):
            next(queue)
        seconds = time.perf_counter() - start
    return num_batches * batch_size * 1024 / seconds


def median_ms(step, repeats: int) -> float:
    step()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def jax_block_ms(attention: str, batch: int, length: int, repeats: int) -> float:
    block = jax_models.TBlock(attention=attention)
    x = jax.random.normal(jax.random.PRNGKey(0), (batch, length, 1024))
    params = block.init(jax.random.PRNGKey(1), x)
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(block.apply(p, x) ** 2)))
    return median_ms(lambda: jax.block_until_ready(grad(params, x)), repeats)


def torch_block_ms(attention: str, batch: int, length: int, repeats: int) -> float:
    torch.manual_seed(0)
    block = torch_models.Block(attention)
    x = torch.randn(batch, length, 1024)

    def step():
        block.zero_grad()
        (block(x) ** 2).sum().backward()

    return median_ms(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline-tokens", type=int, default=64 * 1025 * 16)
    parser.add_argument("--pipeline-batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tokens_per_s = pipeline_tokens_per_second(args.pipeline_tokens, 64, args.pipeline_batches)
    print(f"pipeline: {tokens_per_s:,.0f} tokens/s (batches of 64 x 1024)")
    figures = {}
    for name, measure in (("jax", jax_block_ms), ("torch", torch_block_ms)):
        for attention in ("fused", "plain"):
            figures[f"{name}_{attention}_ms"] = measure(attention, args.batch, args.length,
                                                        args.repeats)
            print(f"{name} {attention}: {figures[f'{name}_{attention}_ms']:.1f} ms per block "
                  f"forward+backward, {args.batch} x {args.length} tokens")
    print(f"finewebedu_lm pipeline_tokens_per_s={tokens_per_s:.0f} "
          + " ".join(f"{key}={value:.1f}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
