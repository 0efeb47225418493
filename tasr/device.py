"""The `--device` of the commands that run a model: auto, cpu, cuda or cuda:N, checked in one place."""

import torch

from tasr.errors import TasrError

CHOICES = "auto, cpu, cuda or cuda:N"


def pick_device(name: str) -> torch.device:
    """The torch device `name` names ("auto": cuda when a GPU is available, else cpu); TasrError
    for a name that is not one of CHOICES or a GPU that this machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index):
        raise TasrError(f"--device {name!r}: not a device (use {CHOICES})")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TasrError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TasrError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device
