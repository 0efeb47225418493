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
