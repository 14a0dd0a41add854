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
    bodies: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - the http.server interface
        Handler.requests[self.path] = Handler.requests.get(self.path, 0) + 1
        body = {"/good": PAYLOAD, "/cut": PAYLOAD, "/other": PAYLOAD[::-1],
                **Handler.bodies}.get(self.path)
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
    Handler.requests, Handler.bodies = {}, {}
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


# -- what a config needs: `pipeline weights` and the stages ------------------------------------


def config_with_named_weights(tmp_path: Path, data) -> Path:
    from tiny_run import data_section, detector_section

    path = tmp_path / "exp.yaml"
    path.write_text(f"run: {{name: w, dir: {tmp_path / 'runs'}, workers: 1, device: cpu}}\n"
                    + data_section(data.source_root, data.target_root)
                    + detector_section(["source_only"]).replace(
                        "backend: torchvision", "backend: torchvision\n  weights: imagenet")
                    + "metrics: {inception_weights: default, lpips_weights: default}\n")
    return path


@pytest.fixture
def served_files(tmp_path, server, monkeypatch):
    """The library files replaced by loopback ones (URLs and hashes overridable for tests only):
    the detector's backbone is a real (randomly initialised) torchvision ResNet-18 state dict."""
    import io

    import torch
    import torchvision

    import pipeline.weights as weights

    buffer = io.BytesIO()
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), buffer)
    bodies = {"/good": PAYLOAD, "/resnet": buffer.getvalue()}
    Handler.bodies = bodies
    base, _ = server
    cache = tmp_path / "cache"
    files = {
        "detector": WeightFile("resnet18 (test)", f"{base}/resnet",
                               hashlib.sha256(bodies["/resnet"]).hexdigest(),
                               cache / "resnet18-test.pth", "detector backbone"),
        "inception": WeightFile("inception (test)", f"{base}/good", SHA, cache / "inc.pth", "m"),
        "alexnet": WeightFile("alexnet (test)", f"{base}/good", SHA, cache / "alex.pth", "m"),
    }
    monkeypatch.setattr(weights, "detector_file", lambda *args: files["detector"])
    monkeypatch.setattr(weights, "inception_file", lambda: files["inception"])
    monkeypatch.setattr(weights, "alexnet_file", lambda: files["alexnet"])
    return files


def test_pipeline_weights_lists_fetches_and_then_works_offline(tmp_path, tiny_data, server,
                                                               served_files, capsys):
    from pipeline.cli import main

    config = config_with_named_weights(tmp_path, tiny_data)
    assert main(["weights", str(config)]) == 1
    out = capsys.readouterr().out
    assert out.count("missing") == 3 and str(served_files["inception"].path) in out
    assert main(["weights", str(config), "--download"]) == 0
    capsys.readouterr()
    server[1].shutdown()
    assert main(["weights", str(config)]) == 0
    assert capsys.readouterr().out.count("present") == 3


def test_offline_run_fails_before_training_then_uses_a_placed_file(tmp_path, tiny_data, server,
                                                                   served_files, caplog):
    from pipeline.cli import main

    base, httpd = server
    config = config_with_named_weights(tmp_path, tiny_data)
    assert main(["run", str(config), "--only", "prepare"]) == 0
    served = served_files["detector"].url
    httpd.shutdown()
    httpd.server_close()
    assert main(["run", str(config), "--only", "train_detector"]) == 1
    path = served_files["detector"].path
    assert f"resnet18 (test): cannot download {served}" in caplog.text
    assert f"put it at {path}" in caplog.text
    assert not (tmp_path / "runs" / "w" / "detector").exists(), "failed before training"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(Handler.bodies["/resnet"])                # placed by hand, right hash
    assert main(["run", str(config), "--only", "train_detector"]) == 0
