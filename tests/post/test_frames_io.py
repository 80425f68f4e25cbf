"""Frames I/O: extract every Nth frame into a unique folder, reassemble folders or image lists."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modules.media.video_io import read_video
from modules.postprocess.common import PostProcessError
from modules.postprocess.frames import ExtractOptions, ReassembleOptions, extract_frames, reassemble_frames
from tests.post.helpers import files_in, nearest_indices


def test_extract_reassemble_round_trips_count_and_size(small_video, source_frames, tmp_path):
    folder = extract_frames(small_video, ExtractOptions(), tmp_path / "frames")
    assert len(list(folder.glob("frame_*.png"))) == 12
    out = reassemble_frames(folder, ReassembleOptions(fps=24), tmp_path / "re.mp4")
    frames, fps = read_video(out)
    assert frames.shape == source_frames.shape and fps == 24
    assert nearest_indices(frames, source_frames) == list(range(12))


def test_extract_every_nth_into_unique_folders(small_video, source_frames, tmp_path):
    a = extract_frames(small_video, ExtractOptions(every_nth=5, image_format="jpg"), tmp_path)
    b = extract_frames(small_video, ExtractOptions(every_nth=5), tmp_path)
    assert a != b and a.parent == b.parent == tmp_path
    assert sorted(p.name for p in a.iterdir()) == ["frame_000001.jpg", "frame_000002.jpg", "frame_000003.jpg"]
    imgs = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(b.iterdir())])
    assert nearest_indices(imgs, source_frames) == [0, 5, 10]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp folders left


def test_reassemble_image_list_in_given_order_and_resizes(tmp_path):
    paths = []
    for i, size in enumerate([(40, 30), (40, 30), (20, 16)]):
        p = tmp_path / f"img{i}.png"
        Image.new("RGB", size, (80 * i, 10, 10)).save(p)
        paths.append(p)
    frames, fps = read_video(reassemble_frames(paths[::-1], ReassembleOptions(fps=10), tmp_path / "v.mp4"))
    assert frames.shape == (3, 16, 20, 3) and fps == 10  # first image (20x16) sets the size
    assert frames[0, ..., 0].mean() > frames[2, ..., 0].mean()


def test_reassemble_refuses_bad_images_and_writes_nothing(tmp_path):
    good = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(good)
    bad = tmp_path / "b.png"
    bad.write_text("not an image")
    with pytest.raises(PostProcessError, match="b.png"):
        reassemble_frames([good, bad], ReassembleOptions(), tmp_path / "v.mp4")
    with pytest.raises(PostProcessError, match="no images"):
        reassemble_frames([], ReassembleOptions(), tmp_path / "v.mp4")
    assert files_in(tmp_path) == {"a.png", "b.png"}
