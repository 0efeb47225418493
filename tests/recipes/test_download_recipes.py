"""The recipes' download scripts against hostile and unlucky servers (127.0.0.1)."""

import hashlib
import importlib.util
from pathlib import Path

import pytest

from archive_helpers import member, symlink_chain_attack, tar_with

REPO = Path(__file__).resolve().parents[2]
# Empty recordings with FSDD's names: enough for the scripts' checks, which look at names only.
FSDD_MEMBERS = [member(f"free-spoken-digit-dataset-1.0.10/recordings/{digit}_george_{index}.wav",
                       data=b"\0" * 300_000) for digit in range(10) for index in range(2)]


def script(recipe):
    spec = importlib.util.spec_from_file_location(f"{recipe}_download", REPO / "recipes" / recipe / "local" / "download.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch):
    monkeypatch.setattr("tasr.download.time.sleep", lambda seconds: None)


def test_fsdd_refuses_the_symlink_chain_attack_and_leaves_no_partial_folder(file_server, tmp_path, capsys):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "flag").write_text("original")  # next to unpacked.tmp, where the archive unpacks
    symlink_chain_attack(file_server.root / "v1.0.10.tar.gz", downloads / "unpacked.tmp", extra=FSDD_MEMBERS)
    code = script("fsdd").main(["--download-dir", str(downloads), "--url", f"{file_server.url}/v1.0.10.tar.gz"])
    assert code == 1
    assert "v1.0.10.tar.gz: unsafe member 'a' refused (a symbolic link" in capsys.readouterr().err
    assert (downloads / "flag").read_text() == "original" and not (downloads / "newfile").exists()
    assert not (downloads / "unpacked.tmp").exists() and not (downloads / "unpacked").exists()


def test_fsdd_deletes_a_cut_download_without_a_length_and_fetches_it_again(file_server, tmp_path, capsys):
    tar_with(file_server.root / "v1.0.10.tar.gz", FSDD_MEMBERS)
    file_server.no_length.add("v1.0.10.tar.gz")
    file_server.cut_after["v1.0.10.tar.gz"] = (file_server.root / "v1.0.10.tar.gz").stat().st_size // 2
    downloads = tmp_path / "downloads"
    code = script("fsdd").main(["--download-dir", str(downloads), "--url", f"{file_server.url}/v1.0.10.tar.gz"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "not a whole tar archive" in captured.err and "deleted, downloading again" in captured.err
    assert "FSDD in" in captured.out and "george (20)" in captured.out
    assert (downloads / "v1.0.10.tar.gz").read_bytes() == (file_server.root / "v1.0.10.tar.gz").read_bytes()


def test_fsdd_fetches_again_a_cut_archive_an_older_version_kept(file_server, tmp_path, capsys):
    tar_with(file_server.root / "v1.0.10.tar.gz", FSDD_MEMBERS)
    data = (file_server.root / "v1.0.10.tar.gz").read_bytes()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "v1.0.10.tar.gz").write_bytes(data[: len(data) // 2])
    code = script("fsdd").main(["--download-dir", str(downloads), "--url", f"{file_server.url}/v1.0.10.tar.gz"])
    assert code == 0, capsys.readouterr().err
    assert (downloads / "v1.0.10.tar.gz").read_bytes() == data


def test_fsdd_refuses_an_archive_without_recordings(file_server, tmp_path, capsys):
    tar_with(file_server.root / "v1.0.10.tar.gz", [member("README.md", data=b"hello\n")])
    downloads = tmp_path / "downloads"
    code = script("fsdd").main(["--download-dir", str(downloads), "--url", f"{file_server.url}/v1.0.10.tar.gz"])
    assert code == 1
    assert "not the FSDD archive" in capsys.readouterr().err
    assert list(downloads.iterdir()) == []


def test_librispeech_refuses_the_symlink_chain_attack(file_server, tmp_path, capsys):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (tmp_path / "flag").write_text("original")
    archive = file_server.root / "dev-clean.tar.gz"
    symlink_chain_attack(archive, downloads, extra=[member("LibriSpeech/dev-clean/README.TXT", data=b"x")])
    (file_server.root / "md5sum.txt").write_text(f"{hashlib.md5(archive.read_bytes()).hexdigest()}  dev-clean.tar.gz\n")
    code = script("librispeech").main(["--subsets", "dev-clean", "--download-dir", str(downloads),
                                       "--url-base", file_server.url])
    assert code == 1
    assert "dev-clean.tar.gz: unsafe member 'a' refused" in capsys.readouterr().err
    assert (tmp_path / "flag").read_text() == "original" and not (tmp_path / "newfile").exists()
    assert not (downloads / "LibriSpeech").exists()
