"""What the machine runs fast: the precision and memory layout that ``--amp auto`` chooses.

A speed trick must never slow another machine down. bf16 autocast halves a step on a CPU
with bf16 instructions (``avx512_bf16`` or ``amx_bf16`` on x86, ``bf16`` on Arm), but on a CPU
without them torch emulates bf16 in software and the same step runs several times slower
(measured: 4.6x on a Reacher ``cpu`` step with the AVX2 kernels). So reduced precision is
chosen from what the machine has, never assumed:

- the CPU's instructions, from ``torch.cpu.get_capabilities()`` (torch >= 2.7) or else the
  ``flags``/``Features`` lines of ``/proc/cpuinfo``;
- what torch may use of them: ``torch.backends.cpu.get_cpu_capability()`` (lowered by
  ``ATEN_CPU_CAPABILITY``) must be AVX512 or better on x86, and oneDNN must report bf16
  (``torch.ops.mkldnn._is_mkldnn_bf16_supported``, which ``ONEDNN_MAX_CPU_ISA`` lowers);
- where both say yes, a one-off measurement (a few convolution and linear training steps in
  fp32 and bf16, about a second) confirms that bf16 is faster; its result is cached per
  machine under the user's cache directory, keyed by CPU model, torch version and the two
  settings above, so later runs decide at once.

:func:`resolve_amp` is the one place that turns ``--amp`` into a precision: an explicit
``fp32``, ``bf16`` or ``fp16`` always wins; ``auto`` is bf16 on CUDA where the GPU supports it
(else fp16), and on the CPU bf16 only where native and measured faster, fp32 otherwise.
:func:`describe_machine` names the CPU model and torch's capability, for benchmark records.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sen_rl.fileio import atomic_write_text

AMP_CHOICES = ("auto", "fp32", "bf16", "fp16")
"""Values of ``--amp``; ``off`` is accepted as an old spelling of ``fp32``."""
PRECISIONS = ("fp32", "bf16", "fp16")
"""What ``--amp`` resolves to."""
X86_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""x86 CPU flags (``/proc/cpuinfo`` spelling) of native bf16 arithmetic."""
ARM_BF16_FLAGS = frozenset({"bf16"})
"""Arm ``Features`` of native bf16 arithmetic (Armv8.6 BF16: Neoverse V1/N2, Graviton3...)."""
X86_BF16_CAPABILITIES = frozenset({"AVX512", "AVX512_BF16", "AMX"})
"""``torch.backends.cpu.get_cpu_capability()`` values whose kernels use bf16 instructions on x86."""
BF16_MIN_SPEEDUP = 1.1
"""The measurement must show bf16 at least this much faster than fp32 for ``auto`` to take it."""
CACHE_ENV = "SEN_RL_CACHE_DIR"
"""Environment variable naming the cache directory (default: ``$XDG_CACHE_HOME/sen-rl`` or ``~/.cache/sen-rl``)."""
CACHE_FILE = "hardware.json"


@dataclass(frozen=True)
class CpuInfo:
    """What decides the CPU precision: the CPU, its instructions and what torch may use of them."""

    model: str
    """CPU model name, e.g. ``Intel(R) Xeon(R) Processor``."""
    arch: str
    """``platform.machine()``: ``x86_64``, ``aarch64``..."""
    flags: frozenset[str] = field(default_factory=frozenset)
    """Instruction-set flags in ``/proc/cpuinfo`` spelling (``avx2``, ``avx512_bf16``, ``bf16``...)."""
    capability: str = "DEFAULT"
    """``torch.backends.cpu.get_cpu_capability()``: the ATen kernels torch dispatches to."""
    onednn_bf16: bool | None = None
    """oneDNN's own bf16 support (None where this torch cannot say)."""

    @property
    def key(self) -> str:
        """Cache key of a measurement: anything that changes bf16's speed is in it."""
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", ""))
        return f"{self.model}|{self.arch}|torch {torch.__version__}|{self.capability}|onednn isa {isa or 'all'}"


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """The CPU model and instruction flags of ``/proc/cpuinfo`` text (first processor's)."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def _torch_flags() -> frozenset[str]:
    """Instruction flags from torch's own CPU query (torch >= 2.7), in ``/proc/cpuinfo`` spelling."""
    query = getattr(torch.cpu, "get_capabilities", None)
    if query is None:
        return frozenset()
    try:
        caps = query()
    except Exception:  # a torch without cpuinfo support: fall back to /proc/cpuinfo
        return frozenset()
    return frozenset(k for k, v in caps.items() if v is True)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's :class:`CpuInfo` (read once per process)."""
    text = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: torch's query alone
        pass
    model, flags = parse_cpuinfo(text)
    bf16_query = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        onednn = bool(bf16_query()) if bf16_query is not None else None
    except Exception:
        onednn = None
    return CpuInfo(
        model=model or platform.processor() or "unknown CPU",
        arch=platform.machine(),
        flags=flags | _torch_flags(),
        capability=torch.backends.cpu.get_cpu_capability(),
        onednn_bf16=onednn,
    )


def native_bf16(info: CpuInfo) -> tuple[bool, str]:
    """Whether the CPU computes bf16 natively *and* torch's kernels use it; with the reason."""
    arm = info.arch.lower() in ("aarch64", "arm64")
    wanted = ARM_BF16_FLAGS if arm else X86_BF16_FLAGS
    have = sorted(wanted & info.flags)
    if not have:
        return False, f"no bf16 instructions ({' or '.join(sorted(wanted))}) on {info.model}"
    if not arm and info.capability not in X86_BF16_CAPABILITIES:
        return False, f"{', '.join(have)} present, but torch runs {info.capability} kernels (ATEN_CPU_CAPABILITY?)"
    if info.onednn_bf16 is False:
        return False, f"{', '.join(have)} present, but oneDNN reports no bf16 (ONEDNN_MAX_CPU_ISA?)"
    return True, f"{', '.join(have)} with torch {info.capability} kernels"


# --------------------------------------------------------------------------- measurement


def _cache_path() -> Path:
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base) / CACHE_FILE
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "sen-rl" / CACHE_FILE


def measure_bf16_speedup(steps: int = 3) -> float:
    """fp32 time over bf16-autocast time of a few small conv + linear training steps on the CPU.

    The workload is shaped like the ``cpu`` presets' SENs (3x3 convolutions on 32x32 maps),
    one thread, so that the answer is about the instructions rather than about the load.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(16, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, 32, 3, padding=2, dilation=2),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(32 * 32 * 32, 64),
        )
        x = torch.randn(32, 16, 32, 32, generator=gen)

        def best(dtype: torch.dtype | None) -> float:
            times = []
            for _ in range(steps + 1):  # the first call pays one-off kernel selection
                t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                    loss = net(x).float().square().mean()
                loss.backward()
                times.append(time.perf_counter() - t0)
            return min(times[1:])

        return best(None) / best(torch.bfloat16)
    finally:
        torch.set_num_threads(threads)


def cached_bf16_speedup(info: CpuInfo, measure: Callable[[], float] = measure_bf16_speedup) -> float:
    """:func:`measure_bf16_speedup` for this machine, measured once and cached under :attr:`CpuInfo.key`."""
    path = _cache_path()
    try:
        cache = json.loads(path.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(info.key)
    if isinstance(entry, dict) and isinstance(entry.get("bf16_speedup"), int | float):
        return float(entry["bf16_speedup"])
    speedup = float(measure())
    cache[info.key] = {"bf16_speedup": round(speedup, 3), "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=1, sort_keys=True) + "\n")
    except OSError:  # a read-only home: decide from the measurement anyway, measure again next time
        pass
    return speedup


# --------------------------------------------------------------------------- decisions


def check_amp(amp: str) -> str:
    """``amp`` validated, with ``off`` spelled ``fp32``."""
    amp = "fp32" if amp == "off" else amp
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp={amp!r}: use one of {', '.join(AMP_CHOICES)}")
    return amp


def resolve_amp(
    amp: str,
    device: torch.device | str,
    info: CpuInfo | None = None,
    speedup: Callable[[CpuInfo], float] | None = None,
    cuda_bf16: bool | None = None,
) -> tuple[str, str]:
    """The precision (``fp32``, ``bf16`` or ``fp16``) that ``--amp amp`` means on ``device``, and why.

    ``info``, ``speedup`` (bf16 over fp32 step time ratio, e.g. :func:`cached_bf16_speedup`) and
    ``cuda_bf16`` default to this machine's; tests pass made-up ones.
    """
    amp = check_amp(amp)
    device = torch.device(device)
    if amp != "auto":
        return amp, "asked for"
    if device.type == "cuda":
        if cuda_bf16 is None:
            cuda_bf16 = torch.cuda.is_bf16_supported()
        return ("bf16", "CUDA with bf16") if cuda_bf16 else ("fp16", "CUDA without bf16: fp16 with loss scaling")
    if device.type != "cpu":
        return "fp32", f"no reduced-precision rule for {device.type}"
    info = info or cpu_info()
    native, why = native_bf16(info)
    if not native:
        return "fp32", why
    ratio = (speedup or cached_bf16_speedup)(info)
    if ratio < BF16_MIN_SPEEDUP:
        return "fp32", f"{why}, but bf16 measured only {ratio:.2f}x as fast"
    return "bf16", f"{why}, bf16 measured {ratio:.2f}x as fast"


def autocast_for(precision: str, device: torch.device) -> torch.autocast | None:
    """The autocast context of a resolved precision (None for fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def use_channels_last(device: torch.device, precision: str) -> bool:
    """channels_last where it pays: CUDA with reduced precision (tensor cores read NHWC).

    On the CPU it bought 1.1x in fp32 on the Cubes ``paper`` model and nothing under bf16
    (docs/benchmarks.md), while the escnn layers convert back: it stays off there.
    """
    return device.type == "cuda" and precision in ("bf16", "fp16")


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def pick_memory_format(
    modules: list[torch.nn.Module], run: Callable[[], object], repeats: int = 30, margin: float = 0.05
) -> torch.memory_format:
    """Time ``run()`` (an inference call through ``modules``) with the modules' weights contiguous
    and channels_last, leave the modules in the faster format and return it.

    Which one wins depends on the machine, the batch and each layer's shape: on the 2-core Xeon
    the Reacher ``cpu`` encoder at batch 1 ran 1.15x faster channels_last (docs/agents.md,
    "Agent speed"), while training gained little or nothing from it (:func:`use_channels_last`).
    channels_last is kept only when more than ``margin`` faster, as timings jitter.
    """
    formats = (torch.contiguous_format, torch.channels_last)
    seconds = {}
    for fmt in formats + formats:  # each twice, interleaved, after one warm-up call
        for m in modules:
            m.to(memory_format=fmt)
        run()
        seconds[fmt] = min(seconds.get(fmt, float("inf")), _median_seconds(run, repeats))
    best = (
        torch.channels_last
        if seconds[torch.channels_last] < (1 - margin) * seconds[torch.contiguous_format]
        else torch.contiguous_format
    )
    for m in modules:
        m.to(memory_format=best)
    return best


def describe_machine() -> str:
    """One line naming the machine a figure was measured on: CPU model, cores, torch and its capability."""
    info = cpu_info()
    native, why = native_bf16(info)
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{info.model} ({info.arch}, {os.cpu_count()} cores), torch {torch.__version__} "
        f"CPU capability {info.capability}, native bf16 {'yes' if native else 'no'} ({why}){gpu}"
    )
