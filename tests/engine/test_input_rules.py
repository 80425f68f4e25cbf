"""The one input checker's job rules (issue 14): a malformed timestamped prompt is refused naming `prompt`
with one sentence; the end frame of the Endframe types is optional (user guide: "End Frame (Optional)")."""

from __future__ import annotations

import shutil

import pytest

from modules.framepack.inputs import InputError, check_inputs
from modules.framepack.params import GenerationParams
from tests.conftest import GOLDEN_DIR


@pytest.mark.parametrize("prompt, needle", [
    ("[0s: a cat sits [1s: broken", "never closed"),
    ("[0s: a cat sits", "never closed"),
    ("[0s: a cat] stray text [2s: a dog]", "text outside"),
])
def test_malformed_timestamped_prompt_is_refused_naming_the_prompt(prompt, needle):
    with pytest.raises(InputError) as err:
        check_inputs(GenerationParams(prompt=prompt))
    assert list(err.value.fields) == ["prompt"]
    message = err.value.fields["prompt"]
    assert needle in message
    assert not message.startswith("prompt:")  # the field is named once, by the key ("prompt: ...")
    assert str(err.value).count("prompt:") == 1


def test_well_formed_timestamped_prompts_pass():
    check_inputs(GenerationParams(prompt="[0s: a cat sits] [1s: the cat jumps]"))
    check_inputs(GenerationParams(prompt="a [red] ball"))


def test_original_with_endframe_without_end_image_is_accepted():
    check_inputs(GenerationParams(generation_type="Original with Endframe"))


def test_video_with_endframe_without_end_image_is_accepted(tmp_path):
    from modules.media.video_io import write_video
    from tests.conftest import make_test_frames

    video = write_video(tmp_path / "src.mp4", make_test_frames(n=9, h=64, w=64), fps=30, crf=10)
    check_inputs(GenerationParams(generation_type="Video with Endframe", input_video=video))


def test_a_given_end_image_is_still_checked(tmp_path):
    bad = tmp_path / "end.png"
    bad.write_text("not an image")
    with pytest.raises(InputError) as err:
        check_inputs(GenerationParams(generation_type="Original with Endframe", end_image=bad))
    assert list(err.value.fields) == ["end_image"]
    good = shutil.copy(GOLDEN_DIR / "end_image_64x64.png", tmp_path / "good.png")
    check_inputs(GenerationParams(generation_type="Original with Endframe", end_image=good))
