"""tasr.download against a local HTTP server: resume, mirrors, MD5 checks, safe extraction."""

import hashlib
import io
import os
import tarfile

import pytest

from tasr.download import download, extract_tar, md5sum, read_md5_list
from tasr.errors import TasrError

PAYLOAD = os.urandom(3 << 20)  # 3 MiB: several read blocks
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def served(file_server):
    (file_server.root / "corpus.tar.gz").write_bytes(PAYLOAD)
    return file_server


def test_download_checks_md5_and_skips_a_good_existing_file(served, tmp_path):
    dest = tmp_path / "dl" / "corpus.tar.gz"
    assert download(f"{served.url}/corpus.tar.gz", dest, md5=PAYLOAD_MD5, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    count = len(served.requests)
    download(f"{served.url}/corpus.tar.gz", dest, md5=PAYLOAD_MD5, progress=False)
    assert len(served.requests) == count  # nothing fetched again


def test_interrupted_download_resumes_with_range(served, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    served.cut_after["corpus.tar.gz"] = 1_000_000
    download(f"{served.url}/corpus.tar.gz", dest, md5=PAYLOAD_MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert served.requests == [("corpus.tar.gz", None), ("corpus.tar.gz", "bytes=1000000-")]
    assert not (tmp_path / "corpus.tar.gz.part").exists()


def test_partial_file_from_an_earlier_run_resumes(served, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    (tmp_path / "corpus.tar.gz.part").write_bytes(PAYLOAD[:123_456])
    download(f"{served.url}/corpus.tar.gz", dest, md5=PAYLOAD_MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert served.requests == [("corpus.tar.gz", "bytes=123456-")]


def test_corrupt_existing_file_is_detected_and_downloaded_again(served, tmp_path, capsys):
    dest = tmp_path / "corpus.tar.gz"
    dest.write_bytes(PAYLOAD[:-1] + b"x")
    download(f"{served.url}/corpus.tar.gz", dest, md5=PAYLOAD_MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert "corrupt" in capsys.readouterr().err


def test_corrupt_transfer_is_fetched_again(served, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    served.corrupt_next.add("corpus.tar.gz")
    download(f"{served.url}/corpus.tar.gz", dest, md5=PAYLOAD_MD5, progress=False)
    assert md5sum(dest) == PAYLOAD_MD5
    assert len(served.requests) == 2


def test_falls_back_to_the_next_mirror(served, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    mirrors = [f"{served.url}/missing/corpus.tar.gz", f"{served.url}/corpus.tar.gz"]
    download(mirrors, dest, md5=PAYLOAD_MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_wrong_md5_everywhere_is_an_error_naming_the_file(served, tmp_path):
    with pytest.raises(TasrError, match="corpus.tar.gz") as error:
        download(f"{served.url}/corpus.tar.gz", tmp_path / "corpus.tar.gz", md5="0" * 32,
                 attempts=2, progress=False)
    assert "MD5" in str(error.value)
    assert not (tmp_path / "corpus.tar.gz").exists()


def test_read_md5_list():
    text = f"{PAYLOAD_MD5}  corpus.tar.gz\n{'a' * 32} *other.tar.gz\n\n"
    assert read_md5_list(text) == {"corpus.tar.gz": PAYLOAD_MD5, "other.tar.gz": "a" * 32}
    with pytest.raises(TasrError, match="line 1"):
        read_md5_list("not an md5 line")


def _tar_with(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def test_extract_tar_unpacks_files(tmp_path):
    info = tarfile.TarInfo("LibriSpeech/README.TXT")
    info.size = 5
    _tar_with(tmp_path / "a.tar.gz", [(info, b"hello")])
    extract_tar(tmp_path / "a.tar.gz", tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "LibriSpeech" / "README.TXT").read_bytes() == b"hello"


@pytest.mark.parametrize("name, link", [("../escape.txt", None), ("link", "../../outside"),
                                        ("abs-link", "/etc/passwd")])
def test_extract_tar_refuses_members_outside_the_folder(tmp_path, name, link):
    info = tarfile.TarInfo(name)
    if link is None:
        info.size = 3
        data = b"bad"
    else:
        info.type, info.linkname, data = tarfile.SYMTYPE, link, None
    _tar_with(tmp_path / "evil.tar.gz", [(info, data)])
    with pytest.raises(TasrError, match="evil.tar.gz"):
        extract_tar(tmp_path / "evil.tar.gz", tmp_path / "out", progress=False)
    assert not (tmp_path / "escape.txt").exists()


def test_extract_truncated_archive_is_an_error(tmp_path):
    info = tarfile.TarInfo("x.bin")
    info.size = 200_000
    _tar_with(tmp_path / "t.tar.gz", [(info, os.urandom(200_000))])
    data = (tmp_path / "t.tar.gz").read_bytes()
    (tmp_path / "t.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(TasrError, match="t.tar.gz"):
        extract_tar(tmp_path / "t.tar.gz", tmp_path / "out", progress=False)


def test_extract_tar_keeps_absolute_names_inside_the_folder(tmp_path):
    name = f"{tmp_path}/absolute.txt"
    info = tarfile.TarInfo(name)
    info.size = 3
    _tar_with(tmp_path / "abs.tar.gz", [(info, b"abs")])
    extract_tar(tmp_path / "abs.tar.gz", tmp_path / "out", progress=False)
    assert not (tmp_path / "absolute.txt").exists()
    assert (tmp_path / "out" / name.lstrip("/")).read_bytes() == b"abs"
