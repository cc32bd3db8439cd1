"""Hardware fingerprint, reference profiles, enforcement in `algoperf run` and sampling.

NVML is replaced by `FakeNvml` answering from recorded machines (an 8x V100 DGX-1, a 4x A100
SXM node, a 1x H100 PCIe); everything else, from the NVML choke point to the runner and the
event log, is the project's real code. Where this machine lets us, the fake is checked against
the real nvidia-ml-py binding (which here has no driver to talk to).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import threading
from pathlib import Path

import pynvml
import pytest
from click.testing import CliRunner

from algoperf.cli import cli
from algoperf.errors import UserError
from algoperf.hardware import (
    HardwareSampler,
    ReferenceMismatch,
    check_reference,
    compare_with,
    load_profile,
    profile_names,
    take_fingerprint,
    throttle_summary,
    use_nvml,
)
from algoperf.hardware.fake_nvml import FakeNvml, load_machine, recorded_host
from algoperf.hardware.fingerprint import Fingerprint
from algoperf.hardware.host import read_host, visible_gpus
from algoperf.hardware.readings import Reading
from algoperf.logs.events import EventLog, read_events, verify_chain
from algoperf.run_command import hardware_lines
from algoperf.runner import RunConfig, run

ROOT = Path(__file__).resolve().parent.parent
SUBMISSION = ROOT / "submissions" / "nadamw_self_tuning" / "submission_pytorch.py"
SW_THERMAL = pynvml.nvmlClocksEventReasonSwThermalSlowdown
SW_POWER_CAP = pynvml.nvmlClocksEventReasonSwPowerCap


def fingerprint_of(machine: dict, legacy_bytes: bool = False, **host_changes) -> Fingerprint:
    """The fingerprint of a recorded machine, host part included."""
    host = recorded_host(machine)
    host.update({k: Reading.of(v) for k, v in host_changes.items()})
    with use_nvml(FakeNvml(machine, legacy_bytes=legacy_bytes)):
        return take_fingerprint(host=host)


def enforced_fields(fp: Fingerprint, profile: str) -> set[str]:
    return {d.field for d in compare_with(profile, fingerprint=fp).mismatches}


# -- the fake behaves like the real binding ------------------------------------------------------

def test_fake_raises_the_real_bindings_error_classes_before_init_like_pynvml():
    fake = FakeNvml(load_machine("dgx1_v100x8"))
    for name in ("nvmlDeviceGetCount", "nvmlShutdown", "nvmlSystemGetDriverVersion"):
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            getattr(pynvml, name)()
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            getattr(fake, name)()


def test_fake_without_driver_fails_init_like_the_real_binding_here():
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as real:
        with pytest.raises(type(real)):
            FakeNvml.failing("LIBRARY_NOT_FOUND").nvmlInit()
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")


def test_p2p_read_index_is_a_one_tuple_that_ctypes_cannot_pass():
    fake = FakeNvml(load_machine("dgx1_v100x8"))
    fake.nvmlInit()
    a, b = fake.nvmlDeviceGetHandleByIndex(0), fake.nvmlDeviceGetHandleByIndex(1)
    assert fake.NVML_P2P_CAPS_INDEX_READ == pynvml.NVML_P2P_CAPS_INDEX_READ == (0,)
    with pytest.raises(ctypes.ArgumentError):  # what real ctypes does with a tuple argument
        ctypes.CDLL(None).abs(pynvml.NVML_P2P_CAPS_INDEX_READ)
    with pytest.raises(ctypes.ArgumentError):
        fake.nvmlDeviceGetP2PStatus(a, b, fake.NVML_P2P_CAPS_INDEX_READ)
    assert fake.nvmlDeviceGetP2PStatus(a, b, 0) == pynvml.NVML_P2P_STATUS_OK


def test_fake_nvlink_queries_past_the_last_link_raise_invalid_argument():
    fake = FakeNvml(load_machine("dgx1_v100x8"))
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    assert fake.nvmlDeviceGetNvLinkState(handle, 5) == pynvml.NVML_FEATURE_ENABLED
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetNvLinkState(handle, 6)
    h100 = FakeNvml(load_machine("h100x1"))
    h100.nvmlInit()
    with pytest.raises(pynvml.NVMLError_NotSupported):
        h100.nvmlDeviceGetNvLinkState(h100.nvmlDeviceGetHandleByIndex(0), 0)


# -- the fingerprint ----------------------------------------------------------------------------

def test_dgx1_fingerprint_reads_every_gpu_and_the_hybrid_cube_mesh():
    fp = fingerprint_of(load_machine("dgx1_v100x8"))
    assert fp.nvml_problem is None
    assert fp.system["gpu_count"].value == 8
    assert fp.system["driver_version"].value == "550.90.12"
    assert {g["name"].value for g in fp.gpus} == {"Tesla V100-SXM2-16GB"}
    gpu = fp.gpus[0]
    assert gpu["pci_bus_id"].value == "0000:06:00.0"
    assert gpu["power_limit_range_mw"].value == [150000, 300000]
    assert gpu["compute_capability"].value == "7.0"
    assert gpu["ecc_mode_current"].value == "enabled"
    assert gpu["clock_event_reasons"].value == ["gpu_idle"]
    # NVLink probing stops at the GPU's last link instead of reading 36 links.
    assert len(gpu["nvlink_remote_bus_ids"].value) == 6
    nvlink = fp.topology["nvlink"].value
    for i in range(8):
        assert sum(n for n in nvlink[i] if n != "X") == 6
        assert all(nvlink[i][j] == nvlink[j][i] for j in range(8))
    assert nvlink[0][3] == 2 and nvlink[0][1] == 1 and nvlink[0][5] == 0
    assert fp.topology["pcie_common_ancestor"].value[0][:5] == ["X", "PIX", "NODE", "NODE", "SYS"]
    assert fp.topology["p2p_read"].value[0][1] == "OK"
    assert fp.host["visible_gpu_count"].value == 8


def test_features_a_gpu_lacks_read_as_not_supported_and_failures_as_errors():
    machine = load_machine("dgx1_v100x8")
    machine["gpus"][2]["serial"] = {"nvml_error": "NO_PERMISSION"}
    machine["gpus"][5]["power"] = {"usage": {"nvml_error": "GPU_IS_LOST"}}
    fp = fingerprint_of(machine)
    assert fp.gpus[0]["mig_mode_current"].status == "not_supported"  # a V100 has no MIG
    assert fp.gpus[2]["serial"].status == "error"
    assert "NoPermission" in fp.gpus[2]["serial"].detail
    assert fp.gpus[5]["power_usage_mw"].status == "error"
    assert fp.gpus[5]["power_limit_mw"].value == 300000  # the rest is still read
    h100 = fingerprint_of(load_machine("h100x1"))
    assert h100.gpus[0]["nvlink_active_links"].status == "not_supported"
    assert h100.topology["nvlink"].status == "not_supported"


def test_bytes_from_older_bindings_give_the_same_fingerprint():
    machine = load_machine("dgx1_v100x8")
    legacy, modern = fingerprint_of(machine, legacy_bytes=True), fingerprint_of(machine)
    assert legacy.gpus[3]["pci_bus_id"].value == "0000:0b:00.0"
    assert legacy.gpus[3]["name"].value == "Tesla V100-SXM2-16GB"
    assert legacy.fields() == modern.fields()


def test_a_binding_without_the_new_clock_event_call_uses_the_throttle_reasons_name():
    machine = load_machine("hgx_a100x4")
    machine["gpus"][1]["clock_event_reasons"] = SW_POWER_CAP
    fake = FakeNvml(machine, missing_functions=("nvmlDeviceGetCurrentClocksEventReasons",))
    with use_nvml(fake):
        fp = take_fingerprint(host=recorded_host(machine))
    assert fp.gpus[1]["clock_event_reasons"].value == ["sw_power_cap"]


def test_digest_covers_configuration_but_not_identities_or_running_state():
    base = fingerprint_of(load_machine("dgx1_v100x8")).digest()
    other_board = load_machine("dgx1_v100x8")
    for i, gpu in enumerate(other_board["gpus"]):
        gpu["uuid"], gpu["serial"] = f"GPU-{i:08d}-0000-0000-0000-000000000000", f"99{i}"
    fake = FakeNvml(other_board)
    fake.set_state(2, temperature=81, sm_clock=1380, clock_event_reasons=SW_THERMAL,
                   power_usage=290000)
    with use_nvml(fake):
        same = take_fingerprint(host={**recorded_host(other_board),
                                      "hostname": Reading.of("elsewhere")})
    assert same.digest() == base
    lowered = load_machine("dgx1_v100x8")
    lowered["gpus"][7]["power"] = {"limit": 250000}
    assert fingerprint_of(lowered).digest() != base
    assert fingerprint_of(load_machine("dgx1_v100x8"), cpu_threads=64).digest() != base


def test_fingerprint_json_round_trips_with_its_digest():
    fp = fingerprint_of(load_machine("h100x1"))
    data = json.loads(json.dumps(fp.to_json()))
    back = Fingerprint.from_json(data)
    assert back.fields() == fp.fields()
    assert back.digest() == data["digest"] == fp.digest()


@pytest.mark.parametrize("variable, expected", [
    (None, [0, 1, 2, 3]),
    ("2,0", [2, 0]),
    ("1,7,3", [1]),  # CUDA stops at the first invalid entry
    ("-1", []),
    ("", []),
    ("0,0", [0]),
])
def test_cuda_visible_devices_selects_gpus_like_cuda(variable, expected):
    uuids = [f"GPU-{i}aaa-bbbb" for i in range(4)]
    assert visible_gpus(variable, uuids) == expected


def test_cuda_visible_devices_by_uuid_prefix_and_mig_instances():
    uuids = ["GPU-0038a475-d27a", "GPU-d365f2cb-e870", "GPU-d3aa0000-0000"]
    assert visible_gpus("GPU-d365,GPU-0038a475-d27a", uuids) == [1, 0]
    assert visible_gpus("GPU-d3", uuids) == []  # ambiguous prefix: invalid, like CUDA
    assert visible_gpus("MIG-9e6a1d3c-4f49-5f7e-a5b7-3a1b2c3d4e5f", uuids) is None


# -- no GPU, no driver, a mismatched driver -----------------------------------------------------

@pytest.mark.parametrize("error, kind, words", [
    ("LIBRARY_NOT_FOUND", "no_library", "no NVIDIA driver"),
    ("DRIVER_NOT_LOADED", "driver_not_loaded", "not loaded"),
    ("LIB_RM_VERSION_MISMATCH", "version_mismatch", "reboot"),
    ("NO_PERMISSION", "no_permission", "/dev/nvidia"),
    ("UNKNOWN", "init_failed", "NVMLError_Unknown"),
])
def test_each_way_nvml_cannot_start_has_its_own_message(error, kind, words):
    with use_nvml(FakeNvml.failing(error)):
        fp = take_fingerprint()
    assert fp.nvml_problem[0] == kind
    assert words in fp.nvml_problem[1]
    assert fp.gpus == [] and fp.system["gpu_count"].status == "error"
    with use_nvml(FakeNvml.failing(error)), pytest.raises(ReferenceMismatch) as refused:
        check_reference("v100x8-v0.6")
    assert str(refused.value).splitlines()[0].endswith(fp.nvml_problem[1])


def test_a_driver_without_gpus_says_so():
    with use_nvml(FakeNvml({"driver_version": "550.90.12", "cuda_driver_version": 12040,
                            "nvml_version": "12.550.90.12", "gpus": [], "topology": {}})):
        fp = take_fingerprint()
    assert fp.nvml_problem[0] == "no_gpu"
    assert fp.system["gpu_count"].value == 0
    assert fp.host["visible_gpu_count"].value == 0


def test_cpu_dev_profile_accepts_a_machine_without_a_driver():
    host = read_host({})
    if host["cpu_usable"].value < 2:
        pytest.skip("the cpu-dev profile needs 2 usable CPUs")
    with use_nvml(FakeNvml.failing("LIBRARY_NOT_FOUND")):
        check = check_reference("cpu-dev", fingerprint=take_fingerprint(host=host))
    assert check.certifiable
    assert check.fingerprint.host["visible_gpu_count"].value == 0


def test_cpu_dev_profile_refuses_a_run_that_sees_gpus():
    machine = load_machine("h100x1")
    assert enforced_fields(fingerprint_of(machine), "cpu-dev") == {"host.visible_gpu_count"}
    # Hiding the GPUs from CUDA makes it a CPU run again.
    assert enforced_fields(fingerprint_of(machine, cuda_visible_devices="-1"), "cpu-dev") == set()


# -- reference profiles -------------------------------------------------------------------------

def test_bundled_profiles_parse():
    assert set(profile_names()) == {"v100x8-v0.5", "v100x8-v0.6", "a100x4", "cpu-dev"}
    for name in profile_names():
        profile = load_profile(name)
        assert {r.check for r in profile.fields} <= {"exact", "range", "audit"}


@pytest.mark.parametrize("machine, profile", [
    ("dgx1_v100x8", "v100x8-v0.6"), ("dgx1_v100x8", "v100x8-v0.5"), ("hgx_a100x4", "a100x4"),
])
def test_recorded_reference_machines_match_their_profiles(machine, profile):
    check = check_reference(profile, fingerprint=fingerprint_of(load_machine(machine)))
    assert check.certifiable
    assert check.event_data()["certifiable"] is True


def _set(machine: dict, gpus, **values) -> None:
    for i in gpus:
        for key, value in values.items():
            machine["gpus"][i][key] = value


MISMATCHES = {
    "wrong GPU model": ("h100x1", "v100x8-v0.6", None, {
        "system.gpu_count", "gpu.0.name", "gpu.0.pci_device_id", "gpu.0.compute_capability",
        "gpu.0.memory_total_bytes", "gpu.0.pcie_gen_max", "gpu.0.power_limit_mw",
        "gpu.0.power_enforced_limit_mw", "gpu.0.power_default_limit_mw",
        "gpu.0.clock_sm_applications_mhz", "gpu.0.clock_mem_applications_mhz",
        "gpu.0.clock_sm_max_mhz", "gpu.0.clock_mem_max_mhz", "gpu.0.mig_mode_current",
        "gpu.0.nvlink_active_links", "topology.nvlink", "host.visible_gpu_count"}),
    "a GPU missing": ("dgx1_v100x8", "v100x8-v0.6",
                      lambda m: m["gpus"].pop(), {"system.gpu_count", "topology.nvlink",
                                                  "host.visible_gpu_count"}),
    "lowered power limit": ("dgx1_v100x8", "v100x8-v0.6", lambda m: _set(
        m, range(8), power={"limit": 250000, "enforced_limit": 250000}),
        {f"gpu.{i}.{f}" for i in range(8) for f in ("power_limit_mw",
                                                     "power_enforced_limit_mw")}),
    "changed application clocks": ("dgx1_v100x8", "v100x8-v0.6", lambda m: _set(
        m, [4], clocks={"applications": {"sm": 1530}}), {"gpu.4.clock_sm_applications_mhz"}),
    "ECC off": ("dgx1_v100x8", "v100x8-v0.6", lambda m: _set(m, [1], ecc=[0, 0]),
                {"gpu.1.ecc_mode_current"}),
    "MIG on": ("hgx_a100x4", "a100x4", lambda m: _set(m, [2], mig=[1, 1]),
               {"gpu.2.mig_mode_current", "gpu.2.mig_mode_pending"}),
    "degraded PCIe link": ("dgx1_v100x8", "v100x8-v0.6", lambda m: _set(
        m, [6], pcie={"width_current": 8}), {"gpu.6.pcie_width_current"}),
    "NVLink down": ("dgx1_v100x8", "v100x8-v0.6", lambda m: (
        m["gpus"][0]["nvlink_remote"].__setitem__(3, None),
        m["gpus"][3]["nvlink_remote"].__setitem__(0, None)),
        {"gpu.0.nvlink_active_links", "gpu.3.nvlink_active_links", "topology.nvlink"}),
    "driver too old for the image's CUDA": ("dgx1_v100x8", "v100x8-v0.6", lambda m: m.update(
        cuda_driver_version=11080), {"system.cuda_driver_version"}),
    "a field NVML cannot read": ("hgx_a100x4", "a100x4", lambda m: _set(
        m, [3], power={"limit": {"nvml_error": "NO_PERMISSION"}}), {"gpu.3.power_limit_mw"}),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_every_kind_of_gpu_mismatch_is_found(case):
    machine_name, profile, change, expected = MISMATCHES[case]
    machine = load_machine(machine_name)
    if change:
        change(machine)
    assert enforced_fields(fingerprint_of(machine), profile) == expected


@pytest.mark.parametrize("host_change, field", [
    ({"memory_total_bytes": 128 * 2**30}, "host.memory_total_bytes"),
    ({"cpu_threads": 16, "cpu_usable": 16}, {"host.cpu_threads", "host.cpu_usable"}),
    ({"cpu_usable": 8}, "host.cpu_usable"),  # a container limited to 8 CPUs
    ({"cuda_visible_devices": "0,1,2,3"}, "host.visible_gpu_count"),
    ({"architecture": "aarch64"}, "host.architecture"),
])
def test_every_kind_of_host_mismatch_is_found(host_change, field):
    fp = fingerprint_of(load_machine("dgx1_v100x8"), **host_change)
    assert enforced_fields(fp, "v100x8-v0.6") == ({field} if isinstance(field, str) else field)


def test_audit_only_fields_are_listed_but_never_refuse():
    machine = load_machine("dgx1_v100x8")
    machine["driver_version"] = "535.104.05"
    _set(machine, range(8), persistence_mode=0)
    check = check_reference("v100x8-v0.6", fingerprint=fingerprint_of(machine))
    assert check.certifiable
    audit = {d.field for d in check.differences if not d.enforced}
    assert "system.driver_version" in audit
    assert "audit-only differences" in check.report()


def test_refusal_prints_the_field_by_field_difference_grouped_over_gpus():
    machine = load_machine("dgx1_v100x8")
    _set(machine, range(8), power={"limit": 250000})
    _set(machine, [5], ecc=[0, 0])
    with pytest.raises(ReferenceMismatch) as refused:
        check_reference("v100x8-v0.6", fingerprint=fingerprint_of(machine))
    message = str(refused.value)
    assert isinstance(refused.value, UserError)
    assert "in 2 field(s)" in message.splitlines()[0]
    assert "gpu[0-7].power_limit_mw  expected 300000, found 250000" in message
    assert "gpu[5].ecc_mode_current" in message and "'disabled'" in message
    assert "--allow-nonreference" in message.splitlines()[-1]


def test_allow_nonreference_runs_anyway_marked_non_certifiable(caplog):
    fp = fingerprint_of(load_machine("h100x1"))
    with caplog.at_level(logging.WARNING):
        check = check_reference("v100x8-v0.6", allow_nonreference=True, fingerprint=fp)
    assert not check.certifiable
    data = check.event_data()
    assert data["certifiable"] is False and data["reference"] == "v100x8-v0.6"
    assert {"field": "gpu.0.name", "check": "exact", "expected": "'Tesla V100-SXM2-16GB'",
            "actual": "NVIDIA H100 PCIe", "enforced": True,
            "expected_value": "Tesla V100-SXM2-16GB"} in data["reference_differences"]
    assert "non-certifiable" in caplog.text


def test_no_reference_means_not_certifiable():
    check = check_reference(None, fingerprint=fingerprint_of(load_machine("dgx1_v100x8")))
    assert not check.certifiable and check.differences == ()


def test_profile_names_and_rules_versions_are_checked():
    with pytest.raises(UserError, match="choose one of a100x4, cpu-dev"):
        check_reference("v100")
    with pytest.raises(UserError, match="pass --rules a100"):
        check_reference("a100x4", rules="v0.6")


def test_a_profile_file_can_be_given_by_path_and_is_validated(tmp_path):
    good = tmp_path / "site.json"
    good.write_text(json.dumps({"name": "site", "fields": {
        "gpu.name": {"check": "exact", "value": "NVIDIA H100 PCIe"},
        "system.gpu_count": {"check": "range", "min": 1, "max": 2}}}))
    assert check_reference(str(good), fingerprint=fingerprint_of(load_machine("h100x1"))) \
        .certifiable
    bad = tmp_path / "typo.json"
    bad.write_text(json.dumps({"fields": {"gpu.nmae": {"check": "exact", "value": 1}}}))
    with pytest.raises(UserError, match="unknown field 'gpu.nmae'"):
        load_profile(str(bad))


# -- sampling -----------------------------------------------------------------------------------

def test_event_log_keeps_its_chain_when_threads_append_at_once(tmp_path):
    with EventLog(tmp_path) as log:
        threads = [threading.Thread(target=lambda: [log.append("t", {"i": i})
                                                   for i in range(50)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert verify_chain(tmp_path / "events.jsonl") == []
    assert len(read_events(tmp_path / "events.jsonl")) == 200


def test_sampler_records_throttling_when_it_happens(tmp_path):
    fake = FakeNvml(load_machine("dgx1_v100x8"))
    with use_nvml(fake), EventLog(tmp_path) as log:
        sampler = HardwareSampler(log, interval_sec=0.01).start()
        while sampler.samples_written < 3:
            threading.Event().wait(0.01)
        fake.set_state(3, clock_event_reasons=SW_THERMAL | 1, temperature=86)
        fake.set_state(6, clock_event_reasons=SW_POWER_CAP)
        written = sampler.samples_written
        while sampler.samples_written < written + 3:
            threading.Event().wait(0.01)
        sampler.stop()
    records = read_events(tmp_path / "events.jsonl")
    samples = [r["data"] for r in records if r["type"] == "hardware_sample"]
    assert len(samples) == sampler.samples_written
    assert samples[0]["gpus"]["clock_event_reasons"] == [1] * 8
    assert "throttled" not in samples[0]
    assert samples[-1]["throttled"] == {"3": ["sw_thermal_slowdown"], "6": ["sw_power_cap"]}
    summary = throttle_summary(records)
    assert 0 < summary.throttled_samples < summary.samples == len(samples)
    assert summary.gpus == (3, 6) and summary.max_temperature_c == 86
    assert "THROTTLED" in summary.text() and "sw_thermal_slowdown" in summary.text()


def test_sampler_ends_quietly_when_its_log_is_closed(tmp_path):
    with use_nvml(FakeNvml(load_machine("h100x1"))):
        log = EventLog(tmp_path)
        sampler = HardwareSampler(log, interval_sec=0.01).start()
        log.close()
        sampler._thread.join(timeout=5)
    assert not sampler._thread.is_alive()
    assert verify_chain(tmp_path / "events.jsonl") == []


# -- enforcement in algoperf run ----------------------------------------------------------------

def run_config(tmp_path: Path, **overrides) -> RunConfig:
    values = dict(submission_path=SUBMISSION, workload="digits", framework="pytorch",
                  experiment_dir=tmp_path / "exp", experiment_name="hw", ruleset="self",
                  seed=0, max_global_steps=5, save_checkpoints=False)
    values.update(overrides)
    return RunConfig(**values)


def test_run_refuses_other_hardware_before_writing_anything(tmp_path):
    with use_nvml(FakeNvml(load_machine("h100x1"))), pytest.raises(ReferenceMismatch) as e:
        run(run_config(tmp_path, reference="v100x8-v0.6"))
    assert "gpu[0].name" in str(e.value)
    assert not (tmp_path / "exp").exists()


def test_run_records_fingerprint_digest_and_non_certifiable_differences(tmp_path):
    fake = FakeNvml(load_machine("dgx1_v100x8"))
    fake.set_state(2, clock_event_reasons=SW_THERMAL)
    with use_nvml(fake):
        (result,) = run(run_config(tmp_path, reference="v100x8-v0.6",
                                   allow_nonreference=True))
    records = read_events(result.trial_dir / "events.jsonl")
    assert verify_chain(result.trial_dir / "events.jsonl") == []
    start = records[0]["data"]
    assert records[0]["type"] == "run_start" and records[-1]["type"] == "run_end"
    fp = Fingerprint.from_json(start["fingerprint"])
    assert len(fp.gpus) == 8 and start["fingerprint_digest"] == fp.digest()
    assert start["reference"] == "v100x8-v0.6" and start["certifiable"] is False
    # This test machine's host is not the reference host; the GPUs are.
    assert {d["field"] for d in start["reference_differences"] if d["enforced"]} <= {
        "host.cpu_threads", "host.cpu_usable", "host.memory_total_bytes"}
    samples = [r for r in records if r["type"] == "hardware_sample"]
    assert len(samples) >= 2  # one as the trial starts, one as it ends
    (line,) = hardware_lines([result])
    assert "NOT CERTIFIABLE: differs from v100x8-v0.6" in line
    assert "THROTTLED" in line and "GPUs 2: sw_thermal_slowdown" in line


def test_run_command_summary_says_when_the_gpus_throttled(tmp_path):
    fake = FakeNvml(load_machine("hgx_a100x4"))
    fake.set_state(1, clock_event_reasons=SW_POWER_CAP)
    args = ["run", "--submission", str(SUBMISSION), "--workload", "digits", "--framework",
            "pytorch", "--experiment-dir", str(tmp_path), "--tuning-ruleset", "self", "--seed",
            "0", "--max-global-steps", "3", "--no-save-checkpoints"]
    with use_nvml(fake):
        result = CliRunner().invoke(cli, args, obj={}, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "no --reference: not certifiable" in result.output
    assert "THROTTLED" in result.output and "sw_power_cap" in result.output



def test_a_resumed_trial_records_the_hardware_of_the_resuming_process(tmp_path):
    config = run_config(tmp_path, save_checkpoints=True, max_global_steps=3)
    with use_nvml(FakeNvml(load_machine("dgx1_v100x8"))):
        (first,) = run(config)
    # Cut the log back to its last checkpoint, as if the process had died there.
    path = first.trial_dir / "events.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    last_checkpoint = max(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line)
    path.write_bytes(b"".join(lines[:last_checkpoint + 1]))
    with use_nvml(FakeNvml(load_machine("hgx_a100x4"))):
        (resumed,) = run(dataclasses.replace(config, resume=True))
    records = read_events(resumed.trial_dir / "events.jsonl")
    assert verify_chain(resumed.trial_dir / "events.jsonl") == []
    start, resume = (r["data"] for r in records if r["type"] in ("run_start", "resume"))
    assert start["fingerprint"]["gpus"][0]["name"] == "Tesla V100-SXM2-16GB"
    assert resume["fingerprint"]["gpus"][0]["name"] == "NVIDIA A100-SXM4-40GB"
    assert resume["fingerprint_digest"] != start["fingerprint_digest"]

# -- algoperf fingerprint -----------------------------------------------------------------------

def test_fingerprint_command_prints_json_and_checks_profiles():
    with use_nvml(FakeNvml(load_machine("dgx1_v100x8"))):
        shown = CliRunner().invoke(cli, ["fingerprint", "--json"], obj={})
        checked = CliRunner().invoke(cli, ["fingerprint", "--check", "a100x4"], obj={},
                                     terminal_width=200)
    assert shown.exit_code == 0
    data = json.loads(shown.output)
    assert data["digest"] == Fingerprint.from_json(data).digest()
    assert [g["name"] for g in data["gpus"]] == ["Tesla V100-SXM2-16GB"] * 8
    assert checked.exit_code == 1
    assert checked.output.startswith("this machine does not match reference profile a100x4")
    assert "NV2" in checked.output  # the nvidia-smi style topology table
    assert checked.output.index("gpu[0-7].name") < checked.output.index("NV2")  # verdict first


def test_fingerprint_command_without_driver_explains_and_passes_cpu_dev():
    with use_nvml(FakeNvml.failing("LIB_RM_VERSION_MISMATCH")):
        result = CliRunner().invoke(cli, ["fingerprint", "--check", "v100x8-v0.6"], obj={},
                                    terminal_width=200)
    assert result.exit_code == 1
    assert "different versions" in result.output
    with use_nvml(FakeNvml.failing("LIBRARY_NOT_FOUND")):
        dev = CliRunner().invoke(cli, ["fingerprint", "--json", "--check", "cpu-dev"], obj={})
    data = json.loads(dev.output)
    assert data["nvml"]["kind"] == "no_library"
    assert data["check"]["certifiable"] == (dev.exit_code == 0)


def test_fingerprint_command_lists_the_profiles():
    result = CliRunner().invoke(cli, ["fingerprint", "--profiles"], obj={}, terminal_width=200)
    assert result.exit_code == 0
    for name in profile_names():
        assert name in result.output
