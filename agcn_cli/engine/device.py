"""Device and numeric precision: which device a command runs on, and TF32 on CUDA."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import AgcnError
from .config import DEVICES


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when available), `cpu` or `cuda`."""
    if name not in DEVICES:
        raise AgcnError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AgcnError("--device cuda: no CUDA device is available here; use --device cpu")
    return torch.device(name)


@contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for cuDNN convolutions and CUDA matmuls on or off inside the block, restored after.

    PyTorch's defaults are TF32 convolutions and fp32 matmuls, so a plain float32 model on
    CUDA is not float32: its logits are much further from float64 than with TF32 off (BENCHMARKS.md,
    "On a GPU"). agcn's `fp32` is float32; `tf32` asks for TF32.
    No effect on the CPU.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def cpu_bf16_units() -> str:
    """The CPU's bfloat16 matrix units, as named by Intel ("AMX-BF16", "AVX512-BF16"), or "" if none.

    Without them (AVX2 machines, most AMD CPUs before Zen 4), PyTorch runs bfloat16 convolutions
    and matrix products through its slow reference kernels (`_slow_conv2d_forward`): a training
    step 15-20x slower than fp32 (BENCHMARKS.md, "CPU bfloat16"), so `agcn train` refuses it there.
    """
    cpu = getattr(torch, "cpu", None)
    checks = (("AMX-BF16", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
    for name, check in checks:
        try:
            if getattr(cpu, check)():
                return name
        except (AttributeError, RuntimeError):  # a torch without the private probe: say none
            continue
    return ""


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in `dtype` (bf16) on `device` inside the block; `None`: full precision."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
