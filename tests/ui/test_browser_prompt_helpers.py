"""Caption, Describe video and Enhance in the Generate tab write into the prompt box (tiny Qwen3-VL stand-in)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from modules.framepack.prompts import parse_timestamped_prompt
from tests.ui.pw import choose, fill, shot, upload

pytestmark = pytest.mark.browser


def test_caption_describe_and_enhance_fill_the_prompt(page: Page, studio, media, artifacts):
    captioner = studio.services.captioner
    page.goto(studio.url)
    prompt = page.locator("#prompt textarea")
    msg = page.locator("#helper_msg")

    # Nothing to caption yet: a sentence naming the box, the prompt untouched.
    fill(page, "prompt", "my own words")
    page.locator("#caption_btn").click()
    expect(msg).to_contain_text("Start Frame: upload an image to caption first.")
    expect(prompt).to_have_value("my own words")

    upload(page, "start_image", media["start"])
    expect(page.locator("#start_preview img")).to_be_visible()
    page.locator("#caption_btn").click()
    expect(msg).to_contain_text("Caption written into the prompt")
    expect(prompt).to_have_value(captioner.caption(media["start"]))  # the same words as the service writes
    expect(page.locator("#hdr-captioner")).to_contain_text("Captioner: Qwen3-VL-2B-Instruct on cpu")
    shot(page, artifacts, "generate_caption")

    # Enhance rewrites each segment and keeps its time.
    fill(page, "prompt", "[0s: a cat sits] [2s: the cat jumps]")
    page.locator("#enhance_btn").click()
    expect(msg).to_contain_text("Prompt enhanced")
    expect(prompt).not_to_have_value("[0s: a cat sits] [2s: the cat jumps]")
    assert [s.start_seconds for s in parse_timestamped_prompt(prompt.input_value())] == [0, 2]

    # Describe video, for a Video type, as a timestamped prompt.
    choose(page, "generation_type", "Video")
    upload(page, "input_video", media["video"])
    expect(page.locator("#video_preview video")).to_be_visible()
    page.locator("#describe_timestamped input").check()
    page.locator("#describe_btn").click()
    expect(msg).to_contain_text("The video:")
    expect(prompt).to_have_value(re.compile(r"^\[0s: "))
    # The form's Video Length (5 s) in two steps.
    assert [s.start_seconds for s in parse_timestamped_prompt(prompt.input_value())] == [0, 2.5]
    shot(page, artifacts, "generate_describe_video")


def test_a_bad_file_is_refused_by_the_box_it_came_from(page: Page, studio, media, tmp_path):
    from modules.media.video_io import write_video
    from tests.conftest import make_test_frames

    one = write_video(tmp_path / "one_frame.mp4", make_test_frames(1, 64, 64), fps=30)
    page.goto(studio.url)
    choose(page, "generation_type", "Video")
    upload(page, "input_video", one)
    fill(page, "prompt", "kept")
    page.locator("#describe_btn").click()
    expect(page.locator("#helper_msg")).to_contain_text("Video Input: one_frame.mp4 has 1 frame")
    expect(page.locator("#prompt textarea")).to_have_value("kept")
    fill(page, "prompt", "   ")
    page.locator("#enhance_btn").click()
    expect(page.locator("#helper_msg")).to_contain_text("Prompt: write a short prompt to enhance first")
