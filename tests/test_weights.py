"""Fetching weight files, against a loopback HTTP server started here (nothing leaves 127.0.0.1)."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from pathlib import Path

import pytest

from pipeline.weights import WeightFile, WeightsError, fetch

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """``/good``: the payload; ``/cut``: announces it all, sends half, closes; ``/other``: other
    bytes; counts requests per path."""

    requests: dict[str, int] = {}

    def do_GET(self):  # noqa: N802 - the http.server interface
        Handler.requests[self.path] = Handler.requests.get(self.path, 0) + 1
        body = {"/good": PAYLOAD, "/cut": PAYLOAD, "/other": PAYLOAD[::-1]}.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.path == "/cut" else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.requests = {}
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    httpd.shutdown()
    httpd.server_close()


def weight(tmp_path: Path, url: str, sha: str = SHA) -> WeightFile:
    return WeightFile("test weights", url, sha, tmp_path / "cache" / "w.pth", "a test")


def test_download_verifies_and_a_cached_file_is_not_fetched_again(tmp_path, server):
    base, httpd = server
    w = weight(tmp_path, f"{base}/good")
    assert w.status() == "missing"
    assert fetch(w, progress=False).read_bytes() == PAYLOAD
    assert w.status() == "present"
    httpd.shutdown()                                   # no network from here on
    assert fetch(w, progress=False, retries=1) == w.path
    assert Handler.requests == {"/good": 1}
    assert [p.name for p in w.path.parent.iterdir()] == ["w.pth"]


def test_a_hash_prefix_is_enough_as_torch_hub_names_its_files(tmp_path, server):
    w = weight(tmp_path, f"{server[0]}/good", sha=SHA[:8])
    assert fetch(w, progress=False).read_bytes() == PAYLOAD


def test_a_connection_cut_mid_file_is_retried_then_refused_leaving_nothing(tmp_path, server):
    w = weight(tmp_path, f"{server[0]}/cut")
    with pytest.raises(WeightsError, match=r"cannot download .*/cut .*connection closed after "
                                           r"150000 of 300000 bytes"):
        fetch(w, progress=False, retries=2, backoff=0.01)
    assert Handler.requests == {"/cut": 2}
    assert list(w.path.parent.iterdir()) == []


def test_a_wrong_hash_is_refused_and_a_bad_cached_file_replaced(tmp_path, server):
    w = weight(tmp_path, f"{server[0]}/other")
    with pytest.raises(WeightsError, match="refused"):
        fetch(w, progress=False)
    assert list(w.path.parent.iterdir()) == []
    w.path.write_bytes(b"a truncated copy")
    assert w.status() == "hash mismatch"
    good = weight(tmp_path, f"{server[0]}/good")
    assert fetch(good, progress=False).read_bytes() == PAYLOAD


def test_offline_error_names_the_file_its_url_and_where_to_put_it(tmp_path, server):
    base, httpd = server
    httpd.shutdown()
    httpd.server_close()
    w = weight(tmp_path, f"{base}/good")
    with pytest.raises(WeightsError) as err:
        fetch(w, progress=False, retries=2, backoff=0.01)
    message = str(err.value)
    assert f"test weights: cannot download {base}/good" in message
    assert f"put it at {w.path} (sha256 {SHA}...)" in message
    assert not w.path.parent.exists() or list(w.path.parent.iterdir()) == []
