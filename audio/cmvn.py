"""Global cepstral mean and variance normalisation: statistics over a whole training set."""

import contextlib
import json
import os
import tempfile

import torch
from torch import nn


class GlobalCMVN(nn.Module):
    """Normalise features to zero mean and unit variance per dimension with dataset-wide statistics.

        cmvn = GlobalCMVN()
        for feats, frame_lengths in batches:
            cmvn.accumulate(feats, frame_lengths)     # [B, T, F], [B] (or [T, F] and None)
        cmvn.save("exp/cmvn.json")
        normalised = cmvn(feats)                      # (feats - mean) / std

    Statistics are kept in float64 (count, sum, sum of squares: the state_dict, plain tensors).
    Standard deviations are floored at `min_std`; `norm_vars=False` only subtracts the mean.
    """

    def __init__(self, num_features: int | None = None, norm_vars: bool = True, min_std: float = 1e-5):
        super().__init__()
        size = 0 if num_features is None else num_features
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("sum", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("sum_squares", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("norm_vars", torch.tensor(bool(norm_vars)))
        self.register_buffer("min_std", torch.tensor(float(min_std), dtype=torch.float64))

    @property
    def num_features(self) -> int:
        return self.sum.numel()

    @torch.no_grad()
    def accumulate(self, feats: torch.Tensor, frame_lengths: torch.Tensor | None = None):
        """Add frames to the statistics: feats `[B, T, F]` with frame_lengths `[B]` (padding ignored) or `[T, F]`."""
        if feats.dim() == 2:
            feats = feats.unsqueeze(0)
        if feats.dim() != 3:
            raise ValueError(f"feats must be [B, T, F] or [T, F], got shape {list(feats.shape)}")
        x = feats.detach().to(torch.float64)
        if frame_lengths is not None:
            mask = torch.arange(x.shape[1], device=x.device) < torch.as_tensor(frame_lengths, device=x.device).unsqueeze(1)
            x = x[mask]
        else:
            x = x.reshape(-1, x.shape[-1])
        if self.num_features == 0:
            self._resize(x.shape[-1], x.device)
        if x.shape[-1] != self.num_features:
            raise ValueError(f"feats have {x.shape[-1]} features per frame, the statistics have {self.num_features}")
        self.count += x.shape[0]
        self.sum += x.sum(0).to(self.sum.device)
        self.sum_squares += x.square().sum(0).to(self.sum.device)

    def _resize(self, size, device):
        self.sum = torch.zeros(size, dtype=torch.float64, device=self.count.device)
        self.sum_squares = torch.zeros(size, dtype=torch.float64, device=self.count.device)

    def mean_std(self):
        """(mean `[F]`, std `[F]`) in float64; raises if nothing was accumulated."""
        if float(self.count) <= 0:
            raise RuntimeError("GlobalCMVN has no statistics: call accumulate() (or load()) first")
        mean = self.sum / self.count
        var = (self.sum_squares / self.count - mean.square()).clamp(min=0)
        return mean, var.sqrt().clamp(min=float(self.min_std))

    def forward(self, feats: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(feats - mean) / std for feats `[..., F]`; with frame_lengths `[B]` (feats `[B, T, F]`) padding stays zero."""
        mean, std = self.mean_std()
        if feats.shape[-1] != mean.numel():
            raise ValueError(f"feats have {feats.shape[-1]} features per frame, the statistics have {mean.numel()}")
        mean = mean.to(feats.dtype)
        out = feats - mean
        if bool(self.norm_vars):
            out = out * std.reciprocal().to(feats.dtype)
        if frame_lengths is not None:
            mask = torch.arange(feats.shape[1], device=feats.device) < frame_lengths.to(feats.device).unsqueeze(1)
            out = out * mask.unsqueeze(-1)
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the feature dimension comes from the saved statistics
        saved = state_dict.get(prefix + "sum")
        if saved is not None and saved.shape != self.sum.shape:
            self._resize(saved.shape[0], self.sum.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @classmethod
    def from_state_dict(cls, state: dict) -> "GlobalCMVN":
        cmvn = cls()
        cmvn.load_state_dict(state)
        return cmvn

    def save(self, path):
        """Write the statistics as JSON, atomically (a temporary file beside `path`, then a rename), with
        the permissions of a new file (0666 less the umask). An OSError names `path`, not the temporary file."""
        data = {
            "count": float(self.count),
            "sum": self.sum.tolist(),
            "sum_squares": self.sum_squares.tolist(),
            "norm_vars": bool(self.norm_vars),
            "min_std": float(self.min_std),
        }
        path = os.fspath(path)
        temp = None
        try:
            fd, temp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                        prefix=f".{os.path.basename(path)}.", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)  # mkstemp makes the file 0600
            os.replace(temp, path)
        except BaseException as error:
            if temp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
            if isinstance(error, OSError) and error.errno:
                raise OSError(error.errno, error.strerror, path) from None
            raise

    @classmethod
    def load(cls, path) -> "GlobalCMVN":
        """Read statistics written by `save`; raises ValueError naming the file when it is not such a file."""
        path = os.fspath(path)
        try:
            with open(path) as f:
                data = json.load(f)
            cmvn = cls(len(data["sum"]), norm_vars=data.get("norm_vars", True), min_std=data.get("min_std", 1e-5))
            cmvn.count.fill_(float(data["count"]))
            cmvn.sum.copy_(torch.tensor(data["sum"], dtype=torch.float64))
            cmvn.sum_squares.copy_(torch.tensor(data["sum_squares"], dtype=torch.float64))
        except FileNotFoundError:
            raise ValueError(f"{path}: no such CMVN file") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"{path}: not a CMVN statistics file ({error})") from None
        return cmvn

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, frames={int(self.count)}, norm_vars={bool(self.norm_vars)}"
