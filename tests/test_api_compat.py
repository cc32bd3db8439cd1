"""A submission written for AlgoPerf v0.6 (or v0.5's package name) finds the API it expects."""

import functools
import inspect
import os
import subprocess
import sys
import textwrap

import pytest

from algoperf import param_utils, spec
from algoperf.errors import UserError

PT = spec.ParameterType


# ---------------------------------------------------------------------------------- spec


def test_loss_type_members_are_algoperfs():
    assert [(m.name, m.value) for m in spec.LossType] == [
        ("SOFTMAX_CROSS_ENTROPY", 0), ("SIGMOID_CROSS_ENTROPY", 1), ("MEAN_SQUARED_ERROR", 2),
        ("CTC_LOSS", 3), ("MEAN_ABSOLUTE_ERROR", 4),
    ]


def test_forward_pass_mode_members_are_algoperfs():
    assert [(m.name, m.value) for m in spec.ForwardPassMode] == [("TRAIN", 0), ("EVAL", 1)]


def test_parameter_type_members_are_algoperfs():
    assert [(m.name, m.value) for m in spec.ParameterType] == [
        ("WEIGHT", 0), ("BIAS", 1), ("CONV_WEIGHT", 2), ("BATCH_NORM_SCALE", 3),
        ("BATCH_NORM_BIAS", 4), ("LAYER_NORM_SCALE", 5), ("LAYER_NORM_BIAS", 6),
        ("EMBEDDING", 7), ("ATTENTION_Q", 8), ("ATTENTION_K", 9), ("ATTENTION_V", 10),
        ("ATTENTION_OUT", 11), ("ATTENTION_QKV", 12), ("ATTENTION_KV", 13),
        ("ATTENTION_BIAS", 14),
    ]


def test_workload_abstract_members_are_algoperfs():
    assert spec.Workload.__abstractmethods__ == {
        "target_metric_name", "validation_target_value", "test_target_value", "loss_type",
        "num_train_examples", "eval_batch_size", "num_eval_train_examples",
        "num_validation_examples", "num_test_examples", "train_mean", "train_stddev",
        "max_allowed_runtime_sec", "eval_period_time_sec", "step_hint",
        "has_reached_validation_target", "has_reached_test_target", "_build_input_queue",
        "is_output_params", "init_model_fn", "model_fn", "loss_fn", "_eval_model_on_split",
    }


SUBMISSION_SIGNATURES = {
    "get_batch_size": ["workload_name"],
    "init_optimizer_state": ["workload", "model_params", "model_state", "hyperparameters",
                             "rng"],
    "update_params": ["workload", "current_param_container", "current_params_types",
                      "model_state", "hyperparameters", "batch", "loss_type",
                      "optimizer_state", "eval_results", "global_step", "rng", "train_state"],
    "prepare_for_eval": ["workload", "current_param_container", "current_params_types",
                         "model_state", "hyperparameters", "loss_type", "optimizer_state",
                         "eval_results", "global_step", "rng"],
    "data_selection": ["workload", "input_queue", "optimizer_state", "current_param_container",
                       "model_state", "hyperparameters", "global_step", "rng"],
}


@pytest.mark.parametrize("name", sorted(SUBMISSION_SIGNATURES))
def test_reference_submission_signatures_are_algoperfs(name):
    parameters = inspect.signature(getattr(spec, name)).parameters
    assert list(parameters) == SUBMISSION_SIGNATURES[name]
    optional = {p for p, v in parameters.items() if v.default is not inspect.Parameter.empty}
    assert optional == ({"train_state"} if name == "update_params" else set())
    assert parameters.get("train_state", None) is None or parameters["train_state"].default is None


def test_training_complete_error_is_an_exception():
    assert issubclass(spec.TrainingCompleteError, Exception)
    with pytest.raises(spec.TrainingCompleteError):
        raise spec.TrainingCompleteError("done")


# ------------------------------------------------------------------------ v0.5 alias package


def test_alias_package_resolves_to_the_same_modules():
    import algorithmic_efficiency.spec
    import algorithmic_efficiency.workloads.registry
    from algorithmic_efficiency.pytorch_utils import pytorch_setup

    import algoperf.pytorch_utils
    import algoperf.random_utils
    import algoperf.workloads.registry
    import algorithmic_efficiency
    from algorithmic_efficiency import random_utils as alias_random_utils
    from algorithmic_efficiency import spec as alias_spec

    assert algorithmic_efficiency.spec is alias_spec is spec
    assert alias_random_utils is algoperf.random_utils
    assert algorithmic_efficiency.workloads.registry is algoperf.workloads.registry
    assert pytorch_setup is algoperf.pytorch_utils.pytorch_setup
    assert alias_spec.LossType.CTC_LOSS is spec.LossType.CTC_LOSS
    assert algorithmic_efficiency.param_utils is param_utils  # attribute access imports
    assert spec.__spec__.name == "algoperf.spec"  # the real module keeps its own spec


def test_alias_package_rejects_missing_modules():
    import algorithmic_efficiency

    with pytest.raises(ModuleNotFoundError, match="algorithmic_efficiency.no_such_module"):
        __import__("algorithmic_efficiency.no_such_module")
    with pytest.raises(AttributeError, match="no_such_module"):
        algorithmic_efficiency.no_such_module  # noqa: B018


def test_alias_package_imports_no_framework():
    code = textwrap.dedent("""
        import sys
        import algorithmic_efficiency.spec
        from algorithmic_efficiency import param_utils, random_utils
        from algorithmic_efficiency.workloads import registry
        import algoperf.spec
        assert algorithmic_efficiency.spec is algoperf.spec
        assert not {"jax", "torch", "flax"} & set(sys.modules), sorted(sys.modules)
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- param_utils


def _flax_params():
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    class Model(nn.Module):
        @nn.compact
        def __call__(self, images, tokens):
            x = nn.Conv(4, (3, 3))(images)
            x = nn.BatchNorm(use_running_average=False)(x)
            x = nn.LayerNorm()(nn.Dense(8)(x.reshape(x.shape[0], -1)))
            e = nn.MultiHeadDotProductAttention(num_heads=2)(nn.Embed(10, 8)(tokens))
            return nn.Dense(3)(x + e.sum(axis=1))

    variables = Model().init(jax.random.PRNGKey(0), jnp.ones((2, 5, 5, 1)),
                             jnp.ones((2, 3), jnp.int32))
    return variables["params"]


def test_jax_param_types_follow_algoperf_heuristics():
    import jax

    params = _flax_params()
    shapes = param_utils.jax_param_shapes(params)
    assert shapes["Conv_0"]["kernel"] == spec.ShapeTuple((3, 3, 1, 4))
    types = param_utils.jax_param_types(shapes)
    attention = {key: {"kernel": kernel, "bias": PT.ATTENTION_BIAS} for key, kernel in [
        ("query", PT.ATTENTION_Q), ("key", PT.ATTENTION_K), ("value", PT.ATTENTION_V),
        ("out", PT.ATTENTION_OUT)]}
    assert types == {
        "Conv_0": {"kernel": PT.CONV_WEIGHT, "bias": PT.BIAS},
        "BatchNorm_0": {"scale": PT.BATCH_NORM_SCALE, "bias": PT.BATCH_NORM_BIAS},
        "Dense_0": {"kernel": PT.WEIGHT, "bias": PT.BIAS},
        "LayerNorm_0": {"scale": PT.LAYER_NORM_SCALE, "bias": PT.LAYER_NORM_BIAS},
        "Embed_0": {"embedding": PT.EMBEDDING},
        "MultiHeadDotProductAttention_0": attention,
        "Dense_1": {"kernel": PT.WEIGHT, "bias": PT.BIAS},
    }
    # Keys keep their case, so type trees map together with the params.
    assert jax.tree.structure(types) == jax.tree.structure(params)
    jax.tree.map(lambda p, t: None, params, types)


def test_jax_param_types_reject_unknown_norm_leaves():
    with pytest.raises(ValueError, match="Unrecognized batch norm parameter: /bn/mean"):
        param_utils.jax_param_types({"bn": {"mean": spec.ShapeTuple((3,))}})


def _torch_model():
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.embedding = nn.Embedding(10, 8)
            self.attn = nn.MultiheadAttention(8, 2)
            self.norm = nn.LayerNorm(8)
            self.fc = nn.Linear(8, 3)

    return Model()


def test_pytorch_param_types_follow_algoperf_heuristics():
    model = _torch_model()
    shapes = param_utils.pytorch_param_shapes(model)
    assert shapes["conv.weight"] == spec.ShapeTuple((4, 1, 3, 3))
    assert list(shapes) == [name for name, _ in model.named_parameters()]
    assert param_utils.pytorch_param_types(shapes) == {
        "conv.weight": PT.CONV_WEIGHT, "conv.bias": PT.BIAS,
        "bn.weight": PT.BATCH_NORM_SCALE, "bn.bias": PT.BATCH_NORM_BIAS,
        "embedding.weight": PT.EMBEDDING,
        "attn.in_proj_weight": PT.ATTENTION_QKV, "attn.in_proj_bias": PT.ATTENTION_BIAS,
        "attn.out_proj.weight": PT.ATTENTION_OUT, "attn.out_proj.bias": PT.ATTENTION_BIAS,
        "norm.weight": PT.LAYER_NORM_SCALE, "norm.bias": PT.LAYER_NORM_BIAS,
        "fc.weight": PT.WEIGHT, "fc.bias": PT.BIAS,
    }


@pytest.mark.parametrize("name, expected", [
    ("self_attn.kv_proj.weight", PT.ATTENTION_KV), ("self_attn.k_proj.weight", PT.ATTENTION_K),
    ("attention.query.weight", PT.ATTENTION_Q), ("attn.v_proj.weight", PT.ATTENTION_V),
    ("attn.scale", PT.WEIGHT), ("encoder.layer_norm.scale", PT.LAYER_NORM_SCALE),
])
def test_pytorch_param_types_of_fused_and_named_attention(name, expected):
    assert param_utils.pytorch_param_types({name: spec.ShapeTuple((8,))}) == {name: expected}


def test_pytorch_param_types_reject_unknown_attention_parameters():
    with pytest.raises(ValueError, match="Unrecognized attention parameter: attn.mystery"):
        param_utils.pytorch_param_types({"attn.mystery": spec.ShapeTuple((8,))})


def test_param_utils_imports_no_framework():
    code = "import sys\nimport algoperf.param_utils\nassert 'jax' not in sys.modules\n" \
           "assert 'torch' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True)


# -------------------------------------------------------------------------- pytorch_utils


def test_pytorch_setup_on_cpu_without_torchrun(monkeypatch):
    from algoperf import pytorch_utils

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    use_ddp, rank, device, n_gpus = pytorch_utils.pytorch_setup()
    assert (use_ddp, rank, device.type, n_gpus) == (False, 0, "cpu", 0)


def test_pytorch_setup_reads_the_torchrun_rank(monkeypatch):
    from algoperf import pytorch_utils

    monkeypatch.setenv("LOCAL_RANK", "1")
    use_ddp, rank, device, _ = pytorch_utils.pytorch_setup()
    assert (use_ddp, rank, str(device)) == (True, 1, "cpu")
    monkeypatch.setenv("LOCAL_RANK", "one")
    with pytest.raises(UserError, match="LOCAL_RANK must be an integer"):
        pytorch_utils.pytorch_setup()


def test_pytorch_init_without_ddp_keeps_jax_off_the_gpus(monkeypatch):
    import torch

    from algoperf import pytorch_utils

    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    pytorch_utils.pytorch_init(False, 0, None)
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert torch.backends.cudnn.benchmark
    if "jax" in sys.modules:
        assert sys.modules["jax"].config.jax_platforms == "cpu"
    else:
        assert os.environ["JAX_PLATFORMS"] == "cpu"
    assert pytorch_utils.sync_ddp_time(12.5, torch.device("cpu")) == 12.5  # no process group


DDP_SCRIPT = """
import logging, os, sys
from algoperf import pytorch_utils

class Profiler:
    local_rank = None
    def set_local_rank(self, rank):
        self.local_rank = rank

logging.getLogger().setLevel(logging.INFO)
use_ddp, rank, device, n_gpus = pytorch_utils.pytorch_setup()
profiler = Profiler()
pytorch_utils.pytorch_init(use_ddp, rank, profiler)
import torch.distributed as dist
assert dist.is_initialized() and dist.get_backend() == "gloo" and dist.get_world_size() == 2
assert profiler.local_rank == rank
assert os.environ["JAX_PLATFORMS"] == "cpu" and "jax" not in sys.modules
assert logging.getLogger().isEnabledFor(logging.INFO) == (rank == 0)
synced = pytorch_utils.sync_ddp_time(10.0 + rank, device)
with open(os.path.join(sys.argv[1], f"rank{rank}"), "w") as f:
    f.write(str(synced))
dist.destroy_process_group()
"""


def test_pytorch_ddp_on_cpu_agrees_on_the_latest_time(tmp_path):
    script = tmp_path / "ddp_check.py"
    script.write_text(DDP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "JAX_PLATFORMS")}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}").read_text() == "11.0"


def _workload_batch_norm(momentum):
    """A batch norm of a workload's own (like Conformer's), not a torch BatchNorm subclass."""
    import torch
    from torch import nn

    class PaddedBatchNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("running_mean", torch.zeros(3))
            self.momentum = momentum

    return PaddedBatchNorm()


def test_update_batch_norm_fn_freezes_and_restores_running_stats():
    import torch
    from torch import nn

    from algoperf.pytorch_utils import update_batch_norm_fn

    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, momentum=0.3)).train()
    bn = model[1]
    x = torch.randn(16, 3) + 5.0
    model.apply(functools.partial(update_batch_norm_fn, update_batch_norm=False))
    model.apply(functools.partial(update_batch_norm_fn, update_batch_norm=False))
    assert bn.momentum == 0.0 and bn.momentum_backup == 0.3  # a second freeze keeps 0.3
    before = bn.running_mean.clone()
    model(x)
    assert torch.equal(bn.running_mean, before)
    model.apply(functools.partial(update_batch_norm_fn, update_batch_norm=True))
    assert bn.momentum == 0.3
    model(x)
    assert not torch.equal(bn.running_mean, before)
    assert not hasattr(model[0], "momentum_backup")


def test_update_batch_norm_fn_handles_workload_batch_norms_with_tensor_momentum():
    import torch

    from algoperf.pytorch_utils import update_batch_norm_fn

    layer = _workload_batch_norm(torch.tensor(0.1))
    update_batch_norm_fn(layer, update_batch_norm=False)
    assert torch.equal(layer.momentum, torch.tensor(0.0))
    update_batch_norm_fn(layer, update_batch_norm=True)
    assert torch.equal(layer.momentum, torch.tensor(0.1))


def test_update_batch_norm_fn_restore_without_freeze_changes_nothing():
    from algoperf.pytorch_utils import update_batch_norm_fn

    layer = _workload_batch_norm(0.2)
    update_batch_norm_fn(layer, update_batch_norm=True)
    assert layer.momentum == 0.2 and not hasattr(layer, "momentum_backup")


def test_custom_dropout_takes_its_rate_at_call_time():
    import torch
    from torch import nn

    from algoperf.pytorch_utils import CustomDropout, CustomDropout2d, SequentialWithDropout

    torch.manual_seed(0)
    x = torch.ones(64, 8, 4, 4)
    model = SequentialWithDropout(nn.Identity(), CustomDropout(), CustomDropout2d()).train()
    assert torch.equal(model(x, 0.0), x)
    dropped = model(x, 0.5)
    assert (dropped == 0).any() and set(dropped.unique().tolist()) <= {0.0, 2.0, 4.0}
    assert torch.equal(model.eval()(x, 0.5), x)


# ---------------------------------------------------------------------- jax_sharding_utils


def test_jax_sharding_utils_use_a_batch_mesh_over_all_devices():
    import jax
    import numpy as np
    from jax.sharding import PartitionSpec

    from algoperf import jax_sharding_utils as jsu

    replicated = jsu.get_replicate_sharding()
    batch = jsu.get_batch_dim_sharding()
    assert replicated.mesh.axis_names == ("batch",)
    assert list(replicated.mesh.devices.flat) == jax.devices()
    assert replicated.spec == PartitionSpec() and batch.spec == PartitionSpec("batch")
    tree = {"w": np.ones((4, 3)), "b": [np.zeros(4)]}
    assert jsu.replicate(tree)["w"].sharding == replicated
    sharded = jsu.shard_along_batch_dim(tree)
    assert sharded["b"][0].sharding == batch
    assert np.array_equal(np.asarray(sharded["w"]), tree["w"])


SHARDING_SCRIPT = """
import numpy as np
from algoperf import jax_sharding_utils as jsu
x = np.arange(12.0).reshape(4, 3)
sharded = jsu.shard_along_batch_dim({"x": x})["x"]
assert sorted(s.data.shape for s in sharded.addressable_shards) == [(2, 3), (2, 3)]
replicated = jsu.replicate(x)
assert [s.data.shape for s in replicated.addressable_shards] == [(4, 3), (4, 3)]
jsu.display_shard_info(sharded)
"""


def test_jax_sharding_utils_split_batches_across_two_cpu_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SHARDING_SCRIPT], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("shard.device:") == 2

