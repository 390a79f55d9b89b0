"""Choice of the compute device, mixed precision and memory layout for training/inference.

Nothing here touches CUDA at import time: the device is probed only when
:func:`select_device` is called, so importing the package (for a Snakemake dry-run, a test
or a plot) never initialises a GPU context.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .config import CORE_FRAGMENT, declared
from .errors import ConfigError

log = logging.getLogger(__name__)

DEVICE_CHOICES: tuple[str, ...] = tuple(declared(CORE_FRAGMENT, "$defs/device_choice")["enum"])
AMP_CHOICES: tuple[str, ...] = tuple(declared(CORE_FRAGMENT, "training.amp")["enum"])
COMPILE_CHOICES: tuple[str, ...] = tuple(declared(CORE_FRAGMENT, "training.compile")["enum"])


@dataclass(frozen=True)
class DeviceSetup:
    """Where and how a model runs.

    ``amp_dtype`` is ``None`` when mixed precision is off (always on CPU).  ``grad_scaler``
    is True only for float16 autocast, which needs loss scaling; bfloat16 does not.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    grad_scaler: bool
    channels_last: bool
    cudnn_benchmark: bool = False
    compile: str = "off"

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def describe(self) -> str:
        """One line for the log, e.g. ``cuda:0 (NVIDIA H100, bf16 autocast)``."""
        if self.is_cuda:
            name = torch.cuda.get_device_name(self.device)
            amp = f"{str(self.amp_dtype).replace('torch.', '')} autocast" if self.amp_dtype else "fp32"
            cl = ", channels-last" if self.channels_last else ""
            tuned = ", cuDNN autotuning" if self.cudnn_benchmark else ""
            comp = f", torch.compile {self.compile}" if self.compile != "off" else ""
            return f"{self.device} ({name}, {amp}{cl}{tuned}{comp})"
        return f"cpu ({torch.get_num_threads()} threads, fp32)"


    def record(self) -> dict:
        """What actually ran, for the run's outputs (the config may say ``auto``): device, its name,
        precision, memory format and the torch / CUDA / cuDNN versions."""
        precision = str(self.amp_dtype).replace("torch.", "") + " autocast" if self.amp_dtype else "fp32"
        cuda = self.is_cuda
        return {"device": str(self.device), "device_name": torch.cuda.get_device_name(self.device) if cuda else "cpu",
                "precision": precision, "grad_scaler": bool(self.grad_scaler),
                "channels_last": bool(self.channels_last), "cudnn_benchmark": bool(self.cudnn_benchmark),
                "compile": self.compile, "torch": str(torch.__version__),
                "cuda": str(torch.version.cuda) if cuda else "",
                "cudnn": str(torch.backends.cudnn.version()) if cuda else ""}


def select_device(requested: str = "auto", *, amp: str = "auto", channels_last: bool = False,
                  cudnn_benchmark: bool = False, compile: str = "off", context: str = "") -> DeviceSetup:
    """Resolve the configured device.

    Parameters
    ----------
    requested:
        ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    amp:
        ``auto`` (bfloat16 autocast on GPUs that support it, else float16), ``off``,
        ``bf16`` or ``fp16``.  Ignored on the CPU, where training always runs in float32
        so that CPU runs are bit-for-bit reproducible.
    channels_last:
        Use the channels-last memory layout on CUDA (faster convolutions on tensor cores).
    cudnn_benchmark:
        On CUDA, let cuDNN time its convolution algorithms for the shapes it meets and keep the
        fastest (``torch.backends.cudnn.benchmark``, set here for the process).
    compile:
        On CUDA, the ``torch.compile`` mode of the networks (``off``, ``default``,
        ``reduce-overhead``, ``max-autotune``); applied by :func:`compile_networks`.
    context:
        Prefix for error messages, e.g. ``"experiment s1_fastgan_A"``.

    Raises
    ------
    ConfigError
        When a GPU is forced on a machine without one, or the value is unknown.
    """
    where = f"{context}: " if context else ""
    req = str(requested).strip().lower()
    base = req.split(":", 1)[0]
    if base not in DEVICE_CHOICES:
        raise ConfigError(f"{where}unknown device {requested!r}; choose one of "
                          f"{', '.join(DEVICE_CHOICES)} (or cuda:N) in training.device")
    if amp not in AMP_CHOICES:
        raise ConfigError(f"{where}unknown amp setting {amp!r}; choose one of {', '.join(AMP_CHOICES)}")
    if compile not in COMPILE_CHOICES:
        raise ConfigError(f"{where}unknown training.compile mode {compile!r}; choose one of "
                          f"{', '.join(COMPILE_CHOICES)}")
    if base == "auto":
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    elif base == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{where}training.device is {requested!r} but no CUDA GPU is usable on this machine "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'}). "
                "Set training.device: auto (or cpu) to train on the CPU, or run the job on a GPU node "
                "with a CUDA build of torch"
            )
        device = torch.device(req)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{where}{requested!r} asked for, but only {torch.cuda.device_count()} "
                              "GPU(s) are visible; use cuda or cuda:0")
    else:
        device = torch.device("cpu")

    amp_dtype: torch.dtype | None = None
    if device.type == "cuda" and amp != "off":
        if amp == "fp16":
            amp_dtype = torch.float16
        elif amp == "bf16" or torch.cuda.is_bf16_supported():
            amp_dtype = torch.bfloat16
        else:
            amp_dtype = torch.float16
    setup = DeviceSetup(device=device, amp_dtype=amp_dtype,
                        grad_scaler=amp_dtype is torch.float16,
                        channels_last=bool(channels_last and device.type == "cuda"),
                        cudnn_benchmark=bool(cudnn_benchmark and device.type == "cuda"),
                        compile=compile if device.type == "cuda" else "off")
    if setup.is_cuda:
        torch.backends.cudnn.benchmark = setup.cudnn_benchmark
    return setup


def compile_networks(nets: torch.nn.ModuleDict, mode: str, *, backend: str = "inductor") -> None:
    """``torch.compile`` every network of ``nets`` in place (``nn.Module.compile``), so that their
    ``state_dict`` keys, and so the checkpoints, are those of the plain networks. ``mode`` is
    ``training.compile`` (``off`` leaves them alone); ``backend`` is torch's (``inductor``; tests
    use ``eager`` to check the wiring without a compiler)."""
    if mode == "off":
        return
    if mode not in COMPILE_CHOICES:
        raise ConfigError(f"unknown training.compile mode {mode!r}; choose one of {', '.join(COMPILE_CHOICES)}")
    for net in nets.values():
        net.compile(backend=backend, **({} if mode == "default" or backend != "inductor" else {"mode": mode}))
