"""`python -m studio download --post`: every post-processing file from a local HTTP server, with progress bars,
sha256 checks, the offline sentence per file, flag combinations, and the README table kept equal to WEIGHTS."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch

from modules.postprocess import weights as W
from studio.cli import main

PROJECT = Path(__file__).resolve().parents[2]


class _Server:
    """A local HTTP server over a folder that counts the requests it answers."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(folder), **kw)

            def do_GET(self):
                outer.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _serve_fakes(monkeypatch, folder: Path, base_url: str, corrupt: str | None = None) -> dict[str, bytes]:
    """Write a small stand-in for every offered file and point the URL table (only) at `base_url`.
    `corrupt`: this key's served bytes differ from the ones its pinned sha256 belongs to."""
    folder.mkdir(parents=True, exist_ok=True)
    served = {}
    for spec in W.offered_weights():
        path = folder / spec.filename
        if spec.kind == "torch":
            torch.save({"params_ema": {"conv.weight": torch.full((2, 3), float(len(spec.key)))}}, path)
        else:
            path.write_bytes(b"onnx stand-in " + spec.key.encode())
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if spec.key == corrupt:
            path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        served[spec.key] = data
        monkeypatch.setitem(W.WEIGHTS, spec.key,
                            W.WeightFile(spec.key, f"{base_url}/{spec.filename}", sha, len(data), spec.kind))
    return served


@pytest.fixture()
def no_framepack(monkeypatch):
    """Fail if the FramePack download is reached (`--post` alone must not touch the HF cache)."""
    import modules.models.loader as loader

    def refuse(*a, **kw):
        raise AssertionError("FramePack download called")

    monkeypatch.setattr(loader, "download", refuse)


def test_download_post_fetches_verifies_and_caches_every_file(tmp_path, data_dir, monkeypatch, capsys,
                                                              no_framepack):
    server = _Server(tmp_path / "remote")
    try:
        _serve_fakes(monkeypatch, tmp_path / "remote", server.url)
        assert main(["download", "--post", "--data-dir", str(data_dir)]) == 0
        out, err = capsys.readouterr()
        folder = data_dir / "weights" / "postprocess"
        for spec in W.offered_weights():
            ready = folder / (f"{spec.key}.safetensors" if spec.kind == "torch" else spec.filename)
            assert ready.is_file() and f"{spec.filename}: {ready}" in out
            assert f"download {spec.filename}" in err  # one tqdm bar per file
        assert "100%" in err
        # the pickles were converted and deleted; only safetensors and the ONNX detector remain
        assert {p.suffix for p in folder.iterdir()} == {".safetensors", ".onnx"}
        fetched = len(server.requests)
        assert fetched == len(W.offered_weights())
        # a second run finds everything cached and downloads nothing
        assert main(["download", "--post", "--data-dir", str(data_dir)]) == 0
        assert len(server.requests) == fetched
    finally:
        server.close()


def test_download_post_hash_mismatch_deletes_file_and_continues(tmp_path, data_dir, monkeypatch, capsys,
                                                                no_framepack):
    server = _Server(tmp_path / "remote")
    try:
        _serve_fakes(monkeypatch, tmp_path / "remote", server.url, corrupt="GFPGANv1.4")
        weights_dir = tmp_path / "w"
        assert main(["download", "--post", "--weights-dir", str(weights_dir), "--data-dir", str(data_dir)]) == 3
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "GFPGANv1.4.pth: sha256" in err and "does not match the published" in err
    names = {p.name for p in weights_dir.iterdir()}
    assert "GFPGANv1.4.pth" not in names and "GFPGANv1.4.safetensors" not in names
    assert "RIFE_IFNet_v426_heavy.safetensors" in names  # the files after the bad one were still fetched


def test_download_post_offline_says_where_to_place_each_file(tmp_path, data_dir, monkeypatch, capsys,
                                                             no_framepack):
    with socket.socket() as s:  # a port nothing listens on: the connection is refused, like a machine offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for spec in W.offered_weights():
        monkeypatch.setitem(W.WEIGHTS, spec.key, W.WeightFile(spec.key, f"http://127.0.0.1:{port}/{spec.filename}",
                                                              spec.sha256, spec.size, spec.kind))
    assert main(["download", "--post", "--data-dir", str(data_dir)]) == 3
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: cannot download")]
    folder = data_dir.resolve() / "weights" / "postprocess"
    assert len(lines) == len(W.offered_weights())
    for line, spec in zip(lines, W.offered_weights()):
        # one sentence: the file, where it comes from, where to put a copy and the hash it must have
        assert line.count(". ") == 0 and f"cannot download {spec.filename} from" in line
        assert f"place it at {folder / spec.filename} " in line and spec.sha256 in line
    assert not list(folder.glob("*.part*"))


def test_download_flags_combine(tmp_path, data_dir, monkeypatch, capsys):
    import modules.models.loader as loader

    calls: list[list[str]] = []
    monkeypatch.setattr(loader, "download", lambda names, **kw: calls.append(list(names)) or {})
    posted: list[str] = []
    monkeypatch.setattr(W.WeightStore, "fetch", lambda self, spec, progress=None: posted.append(spec.key) or
                        self.folder / spec.filename)
    assert main(["download", "--data-dir", str(data_dir)]) == 0
    assert calls[-1][-1] == "transformer_original" and posted == []  # no flag: FramePack only, as before
    calls.clear()
    assert main(["download", "--post", "--data-dir", str(data_dir)]) == 0
    assert calls == [] and posted == [w.key for w in W.offered_weights()]
    posted.clear()
    assert main(["download", "--post", "--f1", "--data-dir", str(data_dir)]) == 0
    assert "transformer_f1" in calls[-1] and "transformer_original" in calls[-1] and len(posted) == len(W.WEIGHTS)


def test_offered_files_are_every_weights_entry_and_every_upscale_model():
    from modules.postprocess.network_options import UPSCALE_MODELS

    keys = [w.key for w in W.offered_weights()]
    assert len(keys) == len(set(keys)) and set(keys) == set(W.WEIGHTS)
    assert {k for m in UPSCALE_MODELS.values() for k in m.weights} <= set(keys)


def test_readme_lists_every_post_processing_file_as_generated_from_weights():
    """The README's offline table is `weights_table_markdown()` verbatim, so it cannot drift from WEIGHTS."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    table = W.weights_table_markdown()
    assert table in readme, "README table is stale; paste weights_table_markdown() output into README.md"
    for spec in W.offered_weights():
        assert spec.url in table and spec.sha256[:16] in table
