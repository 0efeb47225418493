"""tasr.download against a local HTTP server: resume, mirrors, MD5 sums and checks, safe extraction."""

import hashlib
import io
import os
import tarfile

import pytest

from archive_helpers import symlink_chain_attack, tar_with
from tasr.download import download, extract_tar, md5sum, read_md5_list
from tasr.errors import TasrError

PAYLOAD = os.urandom(3 << 20)  # 3 MiB: several read blocks
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def served(file_server):
    (file_server.root / "corpus.tar.gz").write_bytes(PAYLOAD)
    return file_server


@pytest.fixture
def pauses(monkeypatch):
    """The pauses download() takes between tries, recorded instead of slept."""
    slept = []
    monkeypatch.setattr("tasr.download.time.sleep", slept.append)
    return slept


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


def test_wrong_md5_everywhere_is_an_error_naming_the_file(served, tmp_path, pauses):
    with pytest.raises(TasrError, match="corpus.tar.gz") as error:
        download(f"{served.url}/corpus.tar.gz", tmp_path / "corpus.tar.gz", md5="0" * 32,
                 attempts=2, progress=False)
    assert "MD5" in str(error.value)
    assert not (tmp_path / "corpus.tar.gz").exists()


def test_md5_mismatches_pause_and_a_stale_sum_stops_before_the_other_mirrors(served, tmp_path, pauses):
    (served.root / "mirror2").mkdir()
    (served.root / "mirror2" / "corpus.tar.gz").write_bytes(PAYLOAD)
    mirrors = [f"{served.url}/corpus.tar.gz", f"{served.url}/mirror2/corpus.tar.gz"]
    with pytest.raises(TasrError, match="same wrong sum") as error:
        download(mirrors, tmp_path / "corpus.tar.gz", md5="0" * 32, progress=False)
    assert PAYLOAD_MD5 in str(error.value) and "stale" in str(error.value)
    assert [name for name, _ in served.requests] == ["corpus.tar.gz"] * 3  # the second mirror is spared
    assert pauses == [1, 2]
    assert not (tmp_path / "corpus.tar.gz").exists() and not (tmp_path / "corpus.tar.gz.part").exists()


# ---------------------------------------------------------------- downloads without a length or a sum

def _archive_bytes(tmp_path, names) -> bytes:
    """A tar.gz holding 1 MiB of random bytes under each of `names`."""
    path = tmp_path / "made.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1 << 20
            tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    return path.read_bytes()


def lists_the_corpus(path):
    """A `verify` check: the archive reads to its end and holds corpus/data.bin."""
    try:
        with tarfile.open(path) as tar:
            names = tar.getnames()
    except (tarfile.TarError, EOFError) as error:
        raise TasrError(f"{path}: not a whole archive ({error})") from None
    if "corpus/data.bin" not in names:
        raise TasrError(f"{path}: no corpus/data.bin in it")


def test_a_cut_transfer_without_a_length_or_a_check_is_refused(served, tmp_path):
    served.no_length.add("corpus.tar.gz")
    served.cut_after["corpus.tar.gz"] = 1_000_000
    dest = tmp_path / "corpus.tar.gz"
    with pytest.raises(TasrError, match="corpus.tar.gz: .* sent no length"):
        download(f"{served.url}/corpus.tar.gz", dest, progress=False)
    assert not dest.exists() and not (tmp_path / "corpus.tar.gz.part").exists()


def test_a_chunked_transfer_marks_its_end_so_a_cut_one_resumes(served, tmp_path):
    served.chunked.add("corpus.tar.gz")  # as GitHub sends archives: no Content-Length
    dest = download(f"{served.url}/corpus.tar.gz", tmp_path / "whole.tar.gz", progress=False)
    assert dest.read_bytes() == PAYLOAD
    served.requests.clear()
    served.cut_after["corpus.tar.gz"] = 2_500_000  # after two whole reads of 1 MiB
    dest = download(f"{served.url}/corpus.tar.gz", tmp_path / "corpus.tar.gz", progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert served.requests == [("corpus.tar.gz", None), ("corpus.tar.gz", f"bytes={2 << 20}-")]


def test_a_whole_transfer_with_a_length_needs_no_sum(served, tmp_path):
    dest = download(f"{served.url}/corpus.tar.gz", tmp_path / "corpus.tar.gz", progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_verify_refuses_a_cut_transfer_deletes_it_and_fetches_again(file_server, tmp_path, capsys, pauses):
    data = _archive_bytes(tmp_path, ["corpus/data.bin", "corpus/more.bin"])
    (file_server.root / "a.tar.gz").write_bytes(data)
    file_server.no_length.add("a.tar.gz")
    file_server.cut_after["a.tar.gz"] = len(data) // 2
    dest = tmp_path / "dl" / "a.tar.gz"
    download(f"{file_server.url}/a.tar.gz", dest, verify=lists_the_corpus, progress=False)
    assert dest.read_bytes() == data
    assert file_server.requests == [("a.tar.gz", None), ("a.tar.gz", None)]  # the cut part was not resumed
    err = capsys.readouterr().err
    assert "a.tar.gz.part: not a whole archive" in err and "deleted, downloading again" in err


def test_verify_checks_a_file_already_there(file_server, tmp_path, capsys):
    data = _archive_bytes(tmp_path, ["corpus/data.bin"])
    (file_server.root / "a.tar.gz").write_bytes(data)
    dest = tmp_path / "a.tar.gz"
    dest.write_bytes(data[: len(data) // 2])  # left by an older, trusting download
    download(f"{file_server.url}/a.tar.gz", dest, verify=lists_the_corpus, progress=False)
    assert dest.read_bytes() == data
    assert "corrupt" in capsys.readouterr().err


def test_an_archive_that_fails_its_check_is_deleted_with_a_message(file_server, tmp_path, pauses):
    (file_server.root / "a.tar.gz").write_bytes(_archive_bytes(tmp_path, ["other/data.bin"]))
    dest = tmp_path / "a.tar.gz"
    with pytest.raises(TasrError, match="could not download a.tar.gz") as error:
        download(f"{file_server.url}/a.tar.gz", dest, attempts=2, verify=lists_the_corpus, progress=False)
    assert "check failed" in str(error.value) and "no corpus/data.bin in it" in str(error.value)
    assert not dest.exists() and not (tmp_path / "a.tar.gz.part").exists()


def test_read_md5_list():
    text = f"{PAYLOAD_MD5}  corpus.tar.gz\n{'a' * 32} *other.tar.gz\n\n"
    assert read_md5_list(text) == {"corpus.tar.gz": PAYLOAD_MD5, "other.tar.gz": "a" * 32}
    with pytest.raises(TasrError, match="line 1"):
        read_md5_list("not an md5 line")


def test_extract_tar_unpacks_files(tmp_path):
    info = tarfile.TarInfo("LibriSpeech/README.TXT")
    info.size = 5
    tar_with(tmp_path / "a.tar.gz", [(info, b"hello")])
    extract_tar(tmp_path / "a.tar.gz", tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "LibriSpeech" / "README.TXT").read_bytes() == b"hello"


@pytest.mark.parametrize("name, kind, link", [
    ("../escape.txt", tarfile.REGTYPE, ""),
    ("a/../../escape.txt", tarfile.REGTYPE, ""),
    ("/tmp/absolute.txt", tarfile.REGTYPE, ""),
    ("link", tarfile.SYMTYPE, "../../outside"),
    ("abs-link", tarfile.SYMTYPE, "/etc/passwd"),
    ("inner-link", tarfile.SYMTYPE, "first.txt"),  # harmless, but no corpus needs links
    ("hard-link", tarfile.LNKTYPE, "first.txt"),
    ("fifo", tarfile.FIFOTYPE, ""),
    ("device", tarfile.CHRTYPE, ""),
])
def test_extract_tar_refuses_links_special_files_and_names_outside(tmp_path, name, kind, link):
    first = tarfile.TarInfo("first.txt")
    first.size = 2
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    data = None
    if kind == tarfile.REGTYPE:
        info.size, data = 3, b"bad"
    tar_with(tmp_path / "evil.tar.gz", [(first, b"ok"), (info, data)])
    with pytest.raises(TasrError, match=f"evil.tar.gz: unsafe member '{name}' refused"):
        extract_tar(tmp_path / "evil.tar.gz", tmp_path / "out", progress=False)
    assert not (tmp_path / "escape.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []  # checked before anything is written


def test_extract_tar_refuses_the_symlink_chain_that_passes_path_max(tmp_path):
    (tmp_path / "flag").write_text("original")
    symlink_chain_attack(tmp_path / "evil.tar.gz", tmp_path / "out")
    with pytest.raises(TasrError, match="evil.tar.gz: unsafe member 'a' refused .a symbolic link"):
        extract_tar(tmp_path / "evil.tar.gz", tmp_path / "out", progress=False)
    assert (tmp_path / "flag").read_text() == "original"
    assert not (tmp_path / "newfile").exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_extract_truncated_archive_is_an_error(tmp_path):
    info = tarfile.TarInfo("x.bin")
    info.size = 200_000
    tar_with(tmp_path / "t.tar.gz", [(info, os.urandom(200_000))])
    data = (tmp_path / "t.tar.gz").read_bytes()
    (tmp_path / "t.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(TasrError, match="t.tar.gz"):
        extract_tar(tmp_path / "t.tar.gz", tmp_path / "out", progress=False)


def test_extract_tar_refuses_absolute_names(tmp_path):
    info = tarfile.TarInfo(f"{tmp_path}/absolute.txt")
    info.size = 3
    tar_with(tmp_path / "abs.tar.gz", [(info, b"abs")])
    with pytest.raises(TasrError, match="abs.tar.gz: unsafe member .* is absolute"):
        extract_tar(tmp_path / "abs.tar.gz", tmp_path / "out", progress=False)
    assert not (tmp_path / "absolute.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []
