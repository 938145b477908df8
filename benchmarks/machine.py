"""What the benchmark figures were measured on: printed in every benchmark's header line, with a warning where the
CPU is not the kind ../shared/REFERENCE.md's peer figures were measured on (their ratios then compare unlike
machines)."""

from __future__ import annotations

import platform
from pathlib import Path


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what the platform module knows."""
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (/proc/cpuinfo), empty where they cannot be read."""
    for line in _cpuinfo():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def differences_from_reference_kind() -> list[str]:
    """How this CPU differs from REFERENCE.md's machine kind (AMD EPYC Zen 4: AVX-512 with AVX512-BF16, no AMX);
    empty on that kind. Without AVX-512 the matrix products run ~40% slower and bfloat16 has no oneDNN kernels;
    with AMX, bfloat16 products run ~5x faster: either way the ratios to the peers' figures mean nothing."""
    flags, name = cpu_flags(), cpu_name()
    found = []
    if "AMD" not in name.upper():
        found.append(f"not an AMD EPYC ({name})")
    if flags and "avx512_bf16" not in flags:
        found.append("no AVX512-BF16" if "avx512f" in flags else "no AVX-512")
    if "amx_bf16" in flags:
        found.append("AMX matrix units")
    return found


def reference_kind_warning() -> str | None:
    """A header line for the benchmarks' output where this CPU is not REFERENCE.md's kind, else None."""
    found = differences_from_reference_kind()
    if not found:
        return None
    return ("# WARNING: this CPU is not the machine kind of ../shared/REFERENCE.md's peer figures (2-core AMD EPYC "
            f"Zen 4, AVX512-BF16, no AMX): {', '.join(found)}. The ratios to AllenNLP/fastai below compare unlike "
            "machines; compare hf-elmo commits side by side here instead.")
