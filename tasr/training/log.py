"""The log of a training run: train_log.csv (a row per log interval and per validation) and train_curves.png.

Rows are appended whole, one write each with its line end last, so a run killed while writing
leaves at most a torn last line, which `read_log` leaves out. A resumed run drops the rows after
its checkpoint's step.
"""

import csv
import io
import time
from pathlib import Path

from tasr.files import atomic_write

LOG_FIELDS = ["time", "epoch", "step", "split", "loss", "lr", "frames_per_s", "wer", "cer", "skipped"]


def read_log(path) -> list[dict]:
    """The rows of a train_log.csv. Rows are appended whole, line end last, so a row that a kill cut
    short is the last line without its line end: it is left out (as is any row not of LOG_FIELDS)."""
    with open(path, newline="") as f:
        text = f.read()
    complete = text[: text.rfind("\n") + 1]
    rows = csv.DictReader(io.StringIO(complete, newline=""))
    return [r for r in rows if None not in r and None not in r.values() and r["step"].isdigit()]


class TrainLog:
    """train_log.csv (one row per log interval / validation) and train_curves.png; rank 0 only."""

    def __init__(self, folder: Path, resume_step: int | None):
        self.path = folder / "train_log.csv"
        self.plot_path = folder / "train_curves.png"
        rows = []
        if resume_step is not None and self.path.exists():
            rows = [r for r in read_log(self.path) if int(r["step"]) <= resume_step]
        with atomic_write(self.path, newline="") as f:  # a resumed run drops rows after its checkpoint
            writer = csv.DictWriter(f, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def add(self, **row):
        row = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
        line = io.StringIO()
        csv.DictWriter(line, LOG_FIELDS).writerow({"time": f"{time.time():.1f}", **row})
        with open(self.path, "a", newline="") as f:
            f.write(line.getvalue())  # one write, line end last

    def plot(self):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = read_log(self.path)
        train = [r for r in rows if r["split"] == "train" and r["loss"]]
        valid = [r for r in rows if r["split"] == "valid" and r["loss"]]
        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        left.plot([int(r["step"]) for r in train], [float(r["loss"]) for r in train], label="train")
        left.plot([int(r["step"]) for r in valid], [float(r["loss"]) for r in valid], "o-", label="valid")
        left.set(xlabel="step", ylabel="CTC loss (per token)", yscale="log", title="loss")
        left.legend()
        for name in ("wer", "cer"):
            right.plot([int(r["step"]) for r in valid], [100 * float(r[name]) for r in valid], "o-", label=name.upper())
        right.set(xlabel="step", ylabel="%", title="validation error rates")
        right.legend()
        figure.tight_layout()
        with atomic_write(self.plot_path, "wb") as f:
            figure.savefig(f, format="png", dpi=100)
        plt.close(figure)
