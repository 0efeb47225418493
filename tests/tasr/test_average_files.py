"""`tasr average` on files that are not tasr checkpoints: one line naming the file, no torch advice."""

import os
import pickle
import zipfile

import pytest
import torch

from tasr.cli import main


class RunsCode:
    """Unpickling this calls os.system: a loader that runs it is unsafe."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_files(folder):
    marker = folder / "code-ran"
    files = {
        "random.pt": os.urandom(5000),
        "text.pt": b"this is not a checkpoint\n",
        "empty.pt": b"",
        "pickle.pt": pickle.dumps(RunsCode(marker)),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    torch.save({"model": RunsCode(marker), "step": 1}, folder / "malicious.pt")
    torch.save({"epoch": 3, "weights": torch.zeros(2)}, folder / "other.pt")
    torch.save({"model": {"w": "not a tensor"}, "step": 1, "epoch": 1, "config": {}, "tokenizer": {}},
               folder / "strings.pt")
    data = (folder / "other.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])
    with zipfile.ZipFile(folder / "zip.pt", "w") as archive:
        archive.writestr("hello.txt", "a zip, but not torch's")
    return sorted(list(files) + ["malicious.pt", "other.pt", "strings.pt", "truncated.pt", "zip.pt"]), marker


def test_average_says_a_foreign_file_is_not_a_tasr_checkpoint(tmp_path, capsys):
    names, marker = hostile_files(tmp_path)
    errors = {}
    for name in names:
        assert main(["average", str(tmp_path / name), "--out", str(tmp_path / "avg.pt")]) == 2, name
        errors[name] = capsys.readouterr().err
    assert [name for name, err in errors.items() if "weights_only" in err or "Re-running" in err] == []
    for name, err in errors.items():
        assert err.startswith(f"tasr average: error: {tmp_path / name}: not a ") and "tasr checkpoint" in err, err
        assert err.count("\n") == 1, err  # one line
    assert not marker.exists() and not (tmp_path / "avg.pt").exists()


@pytest.mark.parametrize("name", ["missing.pt", "."])
def test_average_names_a_missing_file_or_a_folder(tmp_path, capsys, name):
    assert main(["average", str(tmp_path / name), "--out", str(tmp_path / "avg.pt")]) == 2
    assert str(tmp_path / name).rstrip("/.") in capsys.readouterr().err
