import errno
import os
import subprocess
import sys

import pytest

import tasr
from tasr.cli import main


def run_tasr(*args):
    return subprocess.run([sys.executable, "-m", "tasr", *args], capture_output=True, text=True)


def test_version():
    result = run_tasr("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tasr {tasr.__version__}"


def test_help_lists_commands():
    result = run_tasr("--help")
    assert result.returncode == 0
    assert "commands:" in result.stdout


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["no-such-command"])
    assert exit.value.code == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


def no_space(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_an_output_that_cannot_be_written_is_an_error_naming_it(tmp_path, capsys, monkeypatch):
    """A read-only folder, a file where a folder should be, a full disk: one line, no traceback."""
    (tmp_path / "text.txt").write_text("one two\n")
    (tmp_path / "afile").write_text("")
    command = ["tokenizer", "--text", str(tmp_path / "text.txt"), "--out"]
    assert main(command + [str(tmp_path / "afile" / "tokenizer.json")]) == 2
    assert f"tasr tokenizer: error: {tmp_path / 'afile'}: Not a directory\n" == capsys.readouterr().err
    assert main(command + [str(tmp_path)]) == 2
    assert f"tasr tokenizer: error: {tmp_path}: Is a directory\n" == capsys.readouterr().err
    monkeypatch.setattr(os, "fsync", no_space)
    assert main(command + [str(tmp_path / "tokenizer.json")]) == 2
    assert f"tasr tokenizer: error: {tmp_path / 'tokenizer.json'}: No space left on device\n" == capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["afile", "text.txt"]


@pytest.mark.parametrize("command", [["decode", "--model", "m.pt", "--manifest", "m.jsonl", "--out", "o"],
                                     ["cmvn", "--manifest", "m.jsonl", "--out", "o.json"]])
def test_num_workers_must_be_a_whole_number_of_at_least_0(command, capsys):
    for value, message in [("-1", "must be >= 0, got -1"), ("two", "expected a whole number, got 'two'")]:
        with pytest.raises(SystemExit) as exit:
            main(command + ["--num-workers", value])
        assert exit.value.code == 2
        assert f"error: argument --num-workers: {message}" in capsys.readouterr().err


def test_one_device_check_for_every_command(tmp_path, capsys, monkeypatch):
    """cmvn, decode and train check --device before any work, in the same words."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    commands = {"cmvn": ["--manifest", "m.jsonl", "--out", str(tmp_path / "c.json")],
                "decode": ["--model", "m.pt", "--manifest", "m.jsonl", "--out", str(tmp_path / "o")],
                "train": ["--train", "t.jsonl", "--valid", "v.jsonl", "--exp-dir", str(tmp_path / "exp")]}
    for words, rest in commands.items():
        for device, message in [("cuda", "--device cuda: CUDA is not available on this machine (use --device cpu)"),
                                ("xyz", "--device 'xyz': not a device (use auto, cpu, cuda or cuda:N)"),
                                ("meta", "--device 'meta': not a device")]:
            assert main([words, *rest, "--device", device]) == 2
            assert f"tasr {words}: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()
