"""The prompt helpers' input checks and answer shaping, without a model: every refusal names its field."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modules.captioning import inputs as checks
from modules.captioning import instructions as ask
from modules.framepack.inputs import InputError
from modules.framepack.prompts import parse_timestamped_prompt
from modules.media.video_io import write_video
from tests.conftest import make_test_frames


def _refused(fn, *args) -> dict[str, str]:
    with pytest.raises(InputError) as info:
        fn(*args)
    return info.value.fields


def test_a_non_image_a_huge_image_and_a_missing_file_are_refused_by_name(tmp_path, small_video):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    assert _refused(checks.load_caption_image, text) == {"image": "not a readable image: notes.png"}
    assert _refused(checks.load_caption_image, small_video) == {"image": "small.mp4 is a video, not an image"}
    assert _refused(checks.load_caption_image, tmp_path / "gone.png") == {"image": "file not found: gone.png"}
    huge = tmp_path / "huge.png"
    Image.new("RGB", (9000, 8000)).save(huge)
    assert _refused(checks.load_caption_image, huge)["image"].startswith("image too large")


def test_a_big_image_is_shrunk_before_the_model_sees_it(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 1500), (10, 200, 30)).save(big)
    rgb = checks.load_caption_image(big)
    assert rgb.shape == (checks.MAX_SIDE // 2, checks.MAX_SIDE, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[5, 5]) == (10, 200, 30)


def test_a_corrupt_video_a_one_frame_video_and_an_image_are_refused_as_video(tmp_path, small_video, image):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(small_video.read_bytes()[:300])
    why = _refused(checks.sample_video, broken)["video"]
    assert "broken.mp4" in why
    one = write_video(tmp_path / "one.mp4", make_test_frames(1), fps=30)
    assert _refused(checks.sample_video, one) == {
        "video": "one.mp4 has 1 frame; a video to describe needs at least 2 (use Caption on a still image)"}
    assert _refused(checks.sample_video, image) == {"video": "start.png is an image, not a video"}


def test_frames_are_sampled_evenly_from_first_to_last(tmp_path):
    frames = make_test_frames(30, 64, 96)
    video = write_video(tmp_path / "v.mp4", frames, fps=10, crf=0)
    sampled = checks.sample_video(video, count=4)
    assert sampled.times == [0.0, 1.0, 1.9, 2.9]  # frames 0, 10, 19, 29 at 10 fps
    assert sampled.duration == 3.0 and sampled.fps == 10
    # The marker band of make_test_frames grows with the frame index: the picks are the right frames.
    widths = [int((f[:, :, 0] == f[0, 0, 0]).all(axis=0).sum()) for f in sampled.frames]
    assert widths == sorted(widths) and widths[0] < widths[-1]


def test_the_extension_length_is_checked_with_the_longest_video():
    assert checks.check_extension_seconds(120) == 120
    for bad in (0, -1, 121):
        assert _refused(checks.check_extension_seconds, bad) == {
            "seconds": f"{bad:g} s: the extension's length is more than 0 and at most 120 seconds"}


def test_a_prompt_to_enhance_is_checked_by_the_jobs_timestamp_parser():
    assert _refused(checks.check_enhance_prompt, "  ") == {"prompt": "write a short prompt to enhance first"}
    assert _refused(checks.check_enhance_prompt, "x" * 5000)["prompt"].startswith("5000 characters")
    why = _refused(checks.check_enhance_prompt, "[2s: a cat")["prompt"]
    assert why.startswith("the bracket at position 0 is never closed")
    assert [s.start_seconds for s in checks.check_enhance_prompt("a cat [3s: a dog]")] == [0.0, 3.0]


def test_enhance_keeps_every_timestamp_whatever_the_model_writes():
    segments = parse_timestamped_prompt("[0s: a cat sits] [2.5s: the cat jumps] [6s: it lands]")
    replies = iter(["The cat sits still. [9s: sneaky]", "", "\"Prompt: it lands softly\""])
    out = ask.enhance_segments(segments, lambda text: next(replies))
    assert out == "[0s: The cat sits still. (9s: sneaky)] [2.5s: the cat jumps] [6s: it lands softly]"
    assert [s.start_seconds for s in parse_timestamped_prompt(out)] == [0.0, 2.5, 6.0]
    assert ask.enhance_segments(parse_timestamped_prompt("a cat dances"), lambda t: "A cat dances.") == \
        "A cat dances."


def test_a_timestamped_continuation_spreads_its_sentences_over_the_extension():
    assert ask.continuation_steps(2) == 1 and ask.continuation_steps(9) == 3 and ask.continuation_steps(60) == 4
    assert ask.timestamped(["The cat jumps.", "", "It lands [softly]."], 9) == \
        "[0s: The cat jumps.] [4.5s: It lands (softly).]"
    assert ask.timestamped(["The cat jumps"], 6) == "The cat jumps"
    assert ask.timestamped(["  "], 6) == ""
    # Each step is asked with the steps before it.
    question = ask.continue_step(1, 3, 9, ["The cat jumps."])
    assert "in 3 steps. Step 1: The cat jumps. Write step 2:" in question


def test_the_shipped_tiny_captioner_is_what_its_builder_makes(tmp_path):
    """The tiny Qwen3-VL stand-ins are rebuilt offline by scripts/make_tiny_captioner.py, byte for byte."""
    import hashlib
    import importlib.util

    from modules.models.registry import CAPTIONER_MODELS, TINY_HUB_DIR

    spec = importlib.util.spec_from_file_location("make_tiny_captioner", TINY_HUB_DIR.parents[2] / "scripts" /
                                                  "make_tiny_captioner.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    builder.build(tmp_path)

    def digests(root) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    for repo in CAPTIONER_MODELS:
        folder = "models--" + repo.replace("/", "--")
        assert digests(tmp_path / folder) == digests(TINY_HUB_DIR / folder), repo


def test_download_captioner_offline_names_the_model_and_the_command(tmp_path, data_dir, capsys):
    from studio.cli import main

    assert main(["download", "--captioner", "--hf-home", str(tmp_path / "hf"), "--data-dir", str(data_dir)]) == 3
    err = capsys.readouterr().err
    assert "Qwen/Qwen3-VL-2B-Instruct" in err and "4.3 GB" in err and "python -m studio download --captioner" in err
    assert main(["download", "--captioner", "--captioner-model", "x/y", "--data-dir", str(data_dir)]) == 2
    assert "choose one of Qwen/Qwen3-VL-2B-Instruct, Qwen/Qwen3-VL-4B-Instruct" in capsys.readouterr().err


def test_a_missing_captioner_is_one_sentence_and_disturbs_nothing(tmp_path, image):
    from modules.models.registry import ModelSet
    from studio.captioning.service import CaptionerError, CaptionService
    from studio.settings import Settings

    real = Settings(models=ModelSet.REAL, hf_home=str(tmp_path / "empty-cache"))
    service = CaptionService(lambda: real)
    with pytest.raises(CaptionerError, match="python -m studio download --captioner"):
        service.caption(image)
    assert service.status_text() == "Captioner: not loaded"
