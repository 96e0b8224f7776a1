"""Which float type local models compute in when the user leaves it to us ("auto").

bfloat16 on a CUDA device that supports it, and on a CPU whose matrix units multiply
bfloat16 natively (AMX or AVX512-BF16: recent Xeons, Zen 4 and later), where it is about
twice as fast as float32 for both sampling and LoRA training (`benchmarks/precision.py`
compares the two). float32 everywhere else: a CPU without those units emulates
bfloat16 and gets slower, not faster.
"""

from __future__ import annotations

from typing import Literal

Precision = Literal["float32", "bfloat16"]


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (AMX tiles or AVX512-BF16)."""
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def auto_precision(device: str) -> Precision:
    """The float type "auto" means on `device` ("cpu", "cuda" or "cuda:N")."""
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if cpu_has_native_bf16() else "float32"
