"""`python -m studio calibrate` on the tiny models: a ratios file MagCache can load."""

from __future__ import annotations

import json
import math

import pytest

from modules.framepack.cache import MagCache, load_magcache_ratios
from studio.cli import main
from studio.cli.calibrate import FORMAT, ratios_document


def test_calibrate_cli_writes_loadable_ratios(tmp_path, golden_dir):
    out = tmp_path / "ratios.json"
    rc = main(["calibrate", "--models", "tiny", "--type", "F1", "--steps", "5", "--seconds", "1", "--width", "64",
               "--height", "64", "--latent-window-size", "3", "--image", str(golden_dir / "start_image_64x64.png"),
               "--device", "cpu", "--out", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == FORMAT
    table = doc["models"]["f1"]["5"]
    assert len(table) == 5 and table[0] == 1.0
    assert all(math.isfinite(r) and r > 0 for r in table) and table[1:] != [1.0] * 4
    assert "sections=2" in doc["measurements"]["f1/5"]
    # MagCache reads the file exactly like the shipped data file
    assert load_magcache_ratios("f1", 5, path=out) == table
    cache = MagCache(lambda n: load_magcache_ratios("f1", n, path=out), 0.1, 2, 0.2)
    cache.start_section(5)
    assert cache.ratios == table


def test_ratios_document_merges_tables():
    doc = ratios_document("original", 4, [1.0, 1.1, 0.9, 0.8], "a")
    doc = ratios_document("f1", 4, [1.0, 1.2, 1.0, 0.7], "b", json.loads(json.dumps(doc)))
    doc = ratios_document("original", 4, [1.0, 1.0, 1.0, 1.0], "c", doc)
    assert doc["models"] == {"original": {"4": [1.0, 1.0, 1.0, 1.0]}, "f1": {"4": [1.0, 1.2, 1.0, 0.7]}}
    assert doc["measurements"] == {"original/4": "c", "f1/4": "b"}


def test_calibrate_refuses_foreign_out_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"something": "else"}')
    with pytest.raises(SystemExit, match="not a ratios JSON"):
        main(["calibrate", "--models", "tiny", "--steps", "2", "--seconds", "1", "--width", "64", "--height", "64",
              "--latent-window-size", "1", "--out", str(bad)])
    assert json.loads(bad.read_text()) == {"something": "else"}
