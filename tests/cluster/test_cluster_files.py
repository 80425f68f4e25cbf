"""The cluster code that needs no Ray: --cluster without Ray says how to install it; input and work files travel
intact and land where the job's parameters say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modules.framepack.params import GenerationParams
from studio.cluster.transfer import (FolderWatch, input_files, place_input, read_folder, replace_inputs,
                                     safe_child, write_files)
from tests.hang import HANG_S

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_without_ray_says_how_to_install_it():
    code = ("import sys; sys.modules['ray'] = None\n"  # `import ray` now raises ImportError, as if not installed
            "from studio.cluster.connect import ClusterUnavailable, connect\n"
            "from studio.settings import Settings\n"
            "try:\n    connect('auto', Settings())\nexcept ClusterUnavailable as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "--cluster needs Ray: pip install -r requirements-cluster.txt"


def test_app_cluster_flag_without_ray_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "import app\n"
            f"sys.exit(app.main(['--cluster', 'auto', '--models', 'tiny', '--data-dir', {str(tmp_path)!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip() == "error: --cluster needs Ray: pip install -r requirements-cluster.txt"


def test_studio_imports_no_ray_without_cluster():
    code = ("import sys; import studio.jobs.service, studio.cluster.connect, studio.cluster.remote_engine\n"
            "print('ray' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_input_is_placed_at_the_jobs_own_path(tmp_path):
    data = b"\x89PNG not really"
    missing = tmp_path / "studio" / "kept-inputs" / "abc.png"
    assert place_input(missing, data, tmp_path / "copies") == missing and missing.read_bytes() == data
    assert place_input(missing, data, tmp_path / "copies") == missing  # same bytes there: used as it is
    other = tmp_path / "other.png"
    other.write_bytes(b"different")
    copy = place_input(other, data, tmp_path / "copies")  # never overwrites another file
    assert copy.parent == tmp_path / "copies" and copy.read_bytes() == data and other.read_bytes() == b"different"


def test_replace_inputs_rewrites_only_moved_paths(tmp_path):
    start, end = tmp_path / "a.png", tmp_path / "b.png"
    params = GenerationParams(generation_type="Original with Endframe", start_image=start, end_image=end,
                              keyframes=[{"image": start, "seconds": 1}], total_seconds=2)
    assert input_files(params) == [start, end]
    assert replace_inputs(params, {start: start, end: end}) is params
    moved = replace_inputs(params, {start: tmp_path / "c.png", end: end})
    assert (moved.start_image, moved.end_image, moved.keyframes[0].image) == (tmp_path / "c.png", end,
                                                                              tmp_path / "c.png")


def test_work_files_travel_checkpoint_last(tmp_path):
    src, dst = tmp_path / "actor", tmp_path / "studio"
    src.mkdir()
    watch = FolderWatch(src)
    watch.mark()
    (src / "seg_0000.mp4").write_bytes(b"segment")
    (src / "ckpt_0000.safetensors").write_bytes(b"tensors")
    (src / "checkpoint.json").write_text("{}")
    (src / ".seg_0001.x.part.mp4").write_bytes(b"unfinished")  # a write in progress never travels
    first = watch.changes()
    assert sorted(first.files) == ["checkpoint.json", "ckpt_0000.safetensors", "seg_0000.mp4"]
    written = write_files(dst, first.files, first.removed)
    assert written[-1].name == "checkpoint.json" and read_folder(dst) == read_folder(src)
    (src / "ckpt_0000.safetensors").unlink()
    (src / "ckpt_0001.safetensors").write_bytes(b"next")
    second = watch.changes()
    assert sorted(second.files) == ["ckpt_0001.safetensors"] and second.removed == ["ckpt_0000.safetensors"]
    write_files(dst, second.files, second.removed)
    assert read_folder(dst) == read_folder(src)


@pytest.mark.parametrize("name", ["../escape.mp4", "/etc/passwd", "a/../../b"])
def test_file_names_from_a_worker_stay_in_their_folder(tmp_path, name):
    with pytest.raises(ValueError):
        safe_child(tmp_path, name)


def test_ray_is_optional_and_the_compose_cluster_profile_uses_it():
    import yaml

    assert "ray" not in (ROOT / "requirements.txt").read_text().lower()
    pins = [line.strip() for line in (ROOT / "requirements-cluster.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pins == ["ray==2.60.0"]  # plain Ray core, pinned: not ray[default]
    assert 'if [ "$INSTALL_CLUSTER" = "1" ]; then pip install --no-cache-dir -r requirements-cluster.txt' in \
        (ROOT / "Dockerfile").read_text()
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "profiles" not in services["fp-studio"]  # `docker compose up` stays the one-GPU studio
    head, worker = services["fp-studio-cluster"], services["ray-worker"]
    for svc in (head, worker):
        assert svc["profiles"] == ["cluster"] and svc["build"]["args"] == {"INSTALL_CLUSTER": "1"}
        assert svc["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "ray start --head" in head["command"][-1] and "--cluster auto" in head["command"][-1]
    assert "--gpus none --workers 0" in head["command"][-1]  # the head's GPUs run as actors, no local worker
    assert "ray start --address=" in worker["command"][-1]
