"""sen_rl.hardware: the precision ``--amp`` resolves to, decided on made-up machines (never this one's CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from sen_rl import hardware
from sen_rl.hardware import CpuInfo, cached_bf16_speedup, native_bf16, parse_cpuinfo, resolve_amp

# abridged /proc/cpuinfo of the two kinds of x86 machine the issue names, and of an Arm one
SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512vl avx512_bf16 amx_bf16 amx_tile
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2
"""
EPYC_AVX2 = """processor\t: 0
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 avx avx2 fma f16c
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes sha1 sha2 crc32 atomics fphp asimdhp sve bf16 i8mm
CPU implementer\t: 0x41
"""


def info_of(text: str, arch: str = "x86_64", capability: str = "AVX512", onednn: bool | None = True) -> CpuInfo:
    model, flags = parse_cpuinfo(text)
    return CpuInfo(model=model, arch=arch, flags=flags, capability=capability, onednn_bf16=onednn)


def never_measured(info: CpuInfo) -> float:
    raise AssertionError("no measurement where the decision is already made")


def test_parse_cpuinfo_reads_the_first_processor():
    model, flags = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx512_bf16", "amx_bf16", "avx2"} <= flags
    _, arm_flags = parse_cpuinfo(GRAVITON3)
    assert "bf16" in arm_flags


def test_bf16_native_cpu_takes_bf16_when_measured_faster():
    info = info_of(SAPPHIRE_RAPIDS)
    assert native_bf16(info)[0]
    assert resolve_amp("auto", "cpu", info=info, speedup=lambda i: 1.8)[0] == "bf16"
    # native, but the measurement finds no gain: stay in fp32
    assert resolve_amp("auto", "cpu", info=info, speedup=lambda i: 1.0)[0] == "fp32"


def test_avx2_only_cpu_stays_fp32_without_measuring():
    precision, why = resolve_amp("auto", "cpu", info=info_of(EPYC_AVX2, capability="AVX2"), speedup=never_measured)
    assert precision == "fp32" and "no bf16 instructions" in why


def test_torch_kernels_below_the_hardware_count_as_not_native():
    # the emulation of an AVX2 machine: ATEN_CPU_CAPABILITY=avx2, or oneDNN capped by ONEDNN_MAX_CPU_ISA
    for info in (info_of(SAPPHIRE_RAPIDS, capability="AVX2"), info_of(SAPPHIRE_RAPIDS, onednn=False)):
        assert resolve_amp("auto", "cpu", info=info, speedup=never_measured)[0] == "fp32"


def test_arm_bf16_is_native():
    info = info_of(GRAVITON3, arch="aarch64", capability="SVE256")
    assert native_bf16(info)[0]
    assert resolve_amp("auto", "cpu", info=info, speedup=lambda i: 1.5)[0] == "bf16"


@pytest.mark.parametrize("asked", ["fp32", "bf16", "fp16"])
def test_explicit_amp_always_wins(asked):
    for text, cap in ((SAPPHIRE_RAPIDS, "AVX512"), (EPYC_AVX2, "AVX2")):
        got = resolve_amp(asked, "cpu", info=info_of(text, capability=cap), speedup=never_measured)
        assert got[0] == asked
    assert resolve_amp(asked, "cuda", cuda_bf16=False)[0] == asked


def test_off_is_fp32_and_nonsense_is_refused():
    assert resolve_amp("off", "cpu", speedup=never_measured)[0] == "fp32"
    with pytest.raises(ValueError, match="amp='fp8'.*auto, fp32, bf16, fp16"):
        resolve_amp("fp8", "cpu")


def test_cuda_auto_is_bf16_where_supported_else_fp16():
    assert resolve_amp("auto", "cuda", cuda_bf16=True)[0] == "bf16"
    assert resolve_amp("auto", "cuda", cuda_bf16=False)[0] == "fp16"


def test_channels_last_only_for_reduced_precision_on_cuda():
    assert hardware.use_channels_last(torch.device("cuda"), "bf16")
    assert not hardware.use_channels_last(torch.device("cuda"), "fp32")
    assert not hardware.use_channels_last(torch.device("cpu"), "bf16")


def test_measurement_is_cached_per_machine_key(tmp_path, monkeypatch):
    monkeypatch.setenv(hardware.CACHE_ENV, str(tmp_path))
    calls = []

    def fake_measure() -> float:
        calls.append(1)
        return 1.7

    a, b = info_of(SAPPHIRE_RAPIDS), info_of(SAPPHIRE_RAPIDS, capability="AMX")
    assert cached_bf16_speedup(a, fake_measure) == 1.7
    assert cached_bf16_speedup(a, fake_measure) == 1.7  # from the cache
    assert len(calls) == 1
    cached_bf16_speedup(b, fake_measure)  # another torch capability is another machine
    assert len(calls) == 2
    stored = json.loads((tmp_path / hardware.CACHE_FILE).read_text())
    assert set(stored) == {a.key, b.key} and stored[a.key]["bf16_speedup"] == 1.7
    assert not [p for p in tmp_path.iterdir() if p.name != hardware.CACHE_FILE]  # no temporary left behind


def test_a_corrupt_cache_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv(hardware.CACHE_ENV, str(tmp_path))
    (tmp_path / hardware.CACHE_FILE).write_text("{not json")
    assert cached_bf16_speedup(info_of(SAPPHIRE_RAPIDS), lambda: 0.8) == 0.8
    assert json.loads((tmp_path / hardware.CACHE_FILE).read_text())


def test_describe_machine_names_model_and_capability():
    line = hardware.describe_machine()
    assert hardware.cpu_info().model in line
    assert f"CPU capability {torch.backends.cpu.get_cpu_capability()}" in line


def _timed_by_layout(conv: torch.nn.Module, slow: torch.memory_format):
    """A stand-in for an inference call that is slow exactly when the weights are in layout ``slow``."""
    import time

    def run():
        if conv.weight.is_contiguous(memory_format=slow):
            time.sleep(0.002)

    return run


@pytest.mark.parametrize(
    "slow, faster", [(torch.contiguous_format, torch.channels_last), (torch.channels_last, torch.contiguous_format)]
)
def test_pick_memory_format_keeps_the_faster_layout(slow, faster):
    from sen_rl.hardware import pick_memory_format

    conv = torch.nn.Conv2d(4, 8, 3)
    assert pick_memory_format([conv], _timed_by_layout(conv, slow), repeats=3) == faster
    assert conv.weight.is_contiguous(memory_format=faster)  # the modules are left in it


def test_wrapper_latents_do_not_depend_on_the_chosen_layout():
    import gymnasium as gym
    import numpy as np

    import sen_rl
    from sen_rl.model import build_model

    model = build_model("SEN-Reacher-v0", "sen", preset="smoke", env_kwargs={"size": 64})
    env = gym.make("SEN-Reacher-v0", size=64)
    obs, _ = env.reset(seed=0)
    wrapped = sen_rl.SENWorldModel(env, model)
    ref = model.export().encode(obs[None]).detach().numpy()[0]
    for fmt in (torch.contiguous_format, torch.channels_last):
        for m in (wrapped.model.embedding, wrapped.model.encoder):
            m.to(memory_format=fmt)
        np.testing.assert_allclose(wrapped.observation(obs), ref, rtol=1e-4, atol=1e-5)
    assert wrapped.memory_format in (torch.contiguous_format, torch.channels_last)
