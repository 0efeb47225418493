"""How the tests find a corpus (tests/corpora.py): a variable, the shared copy, or one download per session."""

import socket

import pytest

import corpora
from archive_helpers import member, tar_with

ARCHIVE = "v1.0.10.tar.gz"
# Recordings with FSDD's names: enough for the download script's checks, which look at names only.
MEMBERS = [member(f"free-spoken-digit-dataset-1.0.10/recordings/{digit}_george_{index}.wav", data=b"RIFF")
           for digit in range(10) for index in range(2)]


def fsdd_corpus(tmp_path, url):
    return corpora.Corpus("FSDD", "FSDD_ROOT", "fsdd", holds="recordings", size="a few bytes", urls=[url],
                          shared=tmp_path / "no-shared-copy", cache=tmp_path / "cache")


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{ARCHIVE}"


@pytest.fixture(autouse=True)
def no_fsdd_root(monkeypatch):
    monkeypatch.delenv("FSDD_ROOT", raising=False)


def test_a_missing_corpus_is_downloaded_once_into_the_cache(file_server, tmp_path):
    tar_with(file_server.root / ARCHIVE, MEMBERS)
    corpus = fsdd_corpus(tmp_path, f"{file_server.url}/{ARCHIVE}")
    assert corpus.root == tmp_path / "cache" / "root"  # known before the download
    assert corpus.require() == corpus.root
    assert sorted(p.name for p in (corpus.root / "recordings").iterdir())[:2] == ["0_george_0.wav", "0_george_1.wav"]
    assert corpus.root.resolve() == (tmp_path / "cache" / "unpacked" / "free-spoken-digit-dataset-1.0.10").resolve()
    assert corpus.require() == corpus.root
    assert [name for name, _ in file_server.requests] == [ARCHIVE]  # fetched once
    again = fsdd_corpus(tmp_path, f"{file_server.url}/{ARCHIVE}")  # a later session finds it in the cache
    assert again.require() == corpus.root and len(file_server.requests) == 1


def test_without_a_network_every_test_skips_with_one_message_and_one_try(tmp_path, monkeypatch):
    tries, reachable = [], corpora.reachable
    monkeypatch.setattr(corpora, "reachable", lambda url: tries.append(url) or reachable(url))
    corpus = fsdd_corpus(tmp_path, closed_port_url())
    messages = []
    for _ in range(3):
        with pytest.raises(pytest.skip.Exception) as skipped:
            corpus.require()
        messages.append(str(skipped.value))
    assert len(tries) == 1 and len(set(messages)) == 1
    assert messages[0].startswith("FSDD not found: set FSDD_ROOT to a copy (the folder holding recordings), "
                                  f"or let the tests download it (a few bytes) into {tmp_path / 'cache'}")
    assert "did not answer within 5 s" in messages[0]
    assert not (tmp_path / "cache").exists()


def test_a_closed_port_is_not_reachable():
    assert not corpora.reachable(closed_port_url())


def test_a_failed_download_skips_with_the_scripts_reason(file_server, tmp_path):
    tar_with(file_server.root / ARCHIVE, [member("README.md", data=b"hello\n")])
    corpus = fsdd_corpus(tmp_path, f"{file_server.url}/{ARCHIVE}")
    with pytest.raises(pytest.skip.Exception, match="the download failed: .*not the FSDD archive"):
        corpus.require()


def test_the_variable_names_the_copy_and_a_wrong_one_fails(file_server, tmp_path, monkeypatch):
    (tmp_path / "mine" / "recordings").mkdir(parents=True)
    monkeypatch.setenv("FSDD_ROOT", str(tmp_path / "mine"))
    corpus = fsdd_corpus(tmp_path, f"{file_server.url}/{ARCHIVE}")
    assert corpus.root == tmp_path / "mine" and corpus.require() == tmp_path / "mine"
    monkeypatch.setenv("FSDD_ROOT", str(tmp_path / "elsewhere"))
    wrong = fsdd_corpus(tmp_path, f"{file_server.url}/{ARCHIVE}")
    with pytest.raises(pytest.fail.Exception, match=f"FSDD_ROOT={tmp_path / 'elsewhere'} is not a copy of FSDD"):
        wrong.require()
    assert file_server.requests == []  # nothing downloaded


def test_the_shared_copy_comes_before_the_cache(tmp_path):
    (tmp_path / "shared" / "recordings").mkdir(parents=True)
    corpus = corpora.Corpus("FSDD", "FSDD_ROOT", "fsdd", holds="recordings", size="", urls=[closed_port_url()],
                            shared=tmp_path / "shared", cache=tmp_path / "cache")
    assert corpus.require() == tmp_path / "shared"
