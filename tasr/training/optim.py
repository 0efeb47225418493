"""The optimizer of a training run: AdamW parameter groups and the learning rate of each step."""

import math

from tasr.errors import TasrError


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices and convolution kernels, none on biases and norms."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def learning_rate(step: int, optim: dict, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then the chosen decay."""
    lr, warmup = optim["lr"], optim["warmup_steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    if optim["decay"] == "constant":
        return lr
    if optim["decay"] == "inverse_sqrt":
        return lr * math.sqrt(max(warmup, 1) / (step + 1))
    if optim["decay"] == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return optim["min_lr"] + 0.5 * (lr - optim["min_lr"]) * (1 + math.cos(math.pi * progress))
    raise TasrError(f"optim.decay {optim['decay']!r}: choose cosine, inverse_sqrt or constant")
