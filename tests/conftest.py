"""Shared test fixtures: the corpora, the tiny model's config, a local file server, one torch thread."""

import http.server
import threading
from pathlib import Path

import pytest
import torch
import yaml

import corpora
from model_helpers import tiny_config


class FileServer:
    """Serves the files under `root` on 127.0.0.1 with HTTP Range support, and can misbehave on demand.

    - `cut_after[name] = n`: the next response for `name` sends n bytes of the body, then
      closes the connection (an interrupted download); one-shot.
    - `corrupt_next.add(name)`: the next response for `name` has its bytes flipped; one-shot.
    - `no_length.add(name)`: responses for `name` carry no Content-Length (the body ends
      when the connection closes, so a cut one looks whole); lasting.
    - `chunked.add(name)`: responses for `name` use chunked transfer encoding (no
      Content-Length; a cut one lacks the closing chunk); lasting.
    - `requests`: (path, Range header or None) of every request, in order.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.cut_after = {}
        self.corrupt_next = set()
        self.no_length = set()
        self.chunked = set()
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server._serve(self)

            def log_message(self, *args):
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def _serve(self, handler):
        name = handler.path.split("?")[0].lstrip("/")
        range_header = handler.headers.get("Range")
        self.requests.append((name, range_header))
        path = (self.root / name).resolve()
        if not path.is_file() or self.root.resolve() not in path.parents:
            handler.send_error(404)
            return
        data = path.read_bytes()
        if name in self.corrupt_next:
            self.corrupt_next.discard(name)
            data = bytes(b ^ 0xFF for b in data)
        start = 0
        if range_header and range_header.startswith("bytes=") and range_header.endswith("-"):
            start = int(range_header[len("bytes="):-1])
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        if name in self.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        elif name not in self.no_length:
            handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        cut = self.cut_after.pop(name, None)
        if name in self.chunked:
            size = 1 << 16
            body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                            for i in range(0, len(body), size)) + b"0\r\n\r\n"
        handler.wfile.write(body if cut is None else body[:cut])
        handler.wfile.flush()
        if cut is not None:
            handler.close_connection = True


@pytest.fixture
def file_server(tmp_path):
    """A `FileServer` over a fresh folder `tmp_path / "served"`; put files in `server.root`."""
    root = tmp_path / "served"
    root.mkdir()
    server = FileServer(root)
    yield server
    server.close()


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a test module: tiny models on a shared CPU run fastest and
    steadiest that way (more threads only wait for each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fsdd_root() -> Path:
    """The root of an FSDD copy: recordings/{digit}_{speaker}_{index}.wav, 8 kHz (see corpora.py)."""
    return corpora.fsdd.require()


@pytest.fixture(scope="session")
def an4_root() -> Path:
    """The root of an AN4 copy: etc/ and wav/, in either upstream layout (see corpora.py)."""
    return corpora.an4.require()


@pytest.fixture
def tiny_config_file(tmp_path):
    """Writes model_helpers.tiny_config(**changes) to tmp_path/tiny.yaml and returns that path."""
    def write(**changes) -> Path:
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(tiny_config(**changes), sort_keys=False))
        return path
    return write
