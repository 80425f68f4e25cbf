"""Hand-computed unit tests: section counts, paddings, index splits, frame counts, buckets, sampler, helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modules.framepack import sections as sec
from modules.framepack.buckets import bucket_list, find_bucket, resize_and_center_crop
from modules.framepack.metadata import MetadataError, params_from_metadata
from modules.framepack.naming import sanitize_stem, unique_stem
from modules.framepack.params import GenerationParams
from modules.framepack.sampler import flow_sigmas, seq_len_for, time_shift_mu, unipc_sample


@pytest.mark.parametrize("seconds,lws,expected", [
    (2.0, 3, 5),     # 60/12 = 5
    (5.0, 9, 4),     # 150/36 = 4.17
    (1.2, 1, 9),     # 36/4 = 9
    (4.8, 8, 4),     # 144/32 = 4.5 -> 4 (half to even)
    (7.0, 7, 8),     # 210/28 = 7.5 -> 8 (half to even)
    (1.0, 33, 1),    # 30/132 -> 0 -> at least 1
    (120.0, 9, 100),
])
def test_section_count(seconds, lws, expected):
    assert sec.section_count(seconds, lws) == expected


def test_paddings():
    assert sec.original_paddings(1) == [0]
    assert sec.original_paddings(2) == [1, 0]
    assert sec.original_paddings(4) == [3, 2, 1, 0]
    assert sec.original_paddings(5) == [3, 2, 2, 1, 0]
    assert sec.original_paddings(7) == [3, 2, 2, 2, 2, 1, 0]


def test_frame_counts():
    assert sec.frames_per_section(9) == 33 and sec.frames_per_section(3) == 9
    assert sec.total_latent_frames(5, 3) == 16 and sec.pixel_frames(16) == 61
    assert sec.total_pixel_frames(5.0, 9) == 4 * 36 + 1  # 4 sections x 9 latents + start latent
    assert sec.overlap_frames(9) == 33


def test_original_index_split():
    ind = sec.original_indices(2, 3)  # 1 + 6 + 3 + 1 + 2 + 16 = 29 positions
    assert ind.latent.tolist() == [7, 8, 9]
    assert ind.clean.tolist() == [0, 10]
    assert ind.clean_2x.tolist() == [11, 12]
    assert ind.clean_4x.tolist() == list(range(13, 29))
    last = sec.original_indices(0, 9)
    assert last.latent.tolist() == list(range(1, 10)) and last.clean.tolist() == [0, 10]


def test_f1_index_split():
    ind = sec.f1_indices(9)
    assert ind.clean.tolist() == [0, 19]
    assert ind.clean_4x.tolist() == list(range(1, 17))
    assert ind.clean_2x.tolist() == [17, 18]
    assert ind.latent.tolist() == list(range(20, 29))


def test_original_history_packing_and_end_frame():
    start = torch.full((1, 16, 1, 2, 2), 5.0)
    end = torch.full((1, 16, 1, 2, 2), 7.0)
    h = sec.OriginalHistory(start)
    h.place_end(end, 0.5)
    ci = h.clean_inputs(1, 2)
    assert torch.equal(ci.clean[:, :, 0:1], start) and torch.all(ci.clean[:, :, 1] == 3.5)
    assert ci.clean_2x.shape[2] == 2 and ci.clean_4x.shape[2] == 16
    gen = torch.ones(1, 16, 2, 2, 2)
    h.add(gen, is_last=False)
    assert h.total == 2 and torch.all(h.buffer[:, :, 2] == 3.5)  # end latent moved into 2x context
    ci2 = h.clean_inputs(0, 2)
    assert torch.all(ci2.clean[:, :, 1] == 1) and torch.all(ci2.clean_2x[:, :, 0] == 1)
    assert torch.all(ci2.clean_2x[:, :, 1] == 3.5)
    h.add(gen * 2, is_last=True)
    assert h.total == 5 and torch.equal(h.real()[:, :, 0:1], start)
    assert h.decode_window(2, first=False, is_last=True).shape[2] == 5


def test_f1_history_and_post_slot():
    start = torch.zeros(1, 16, 1, 2, 2)
    h = sec.F1History(start)
    assert h.total == 1
    h.add(torch.ones(1, 16, 3, 2, 2))
    ci = h.clean_inputs(3)
    assert torch.all(ci.clean[:, :, 1] == 1) and ci.clean.shape[2] == 2
    post = torch.full((1, 16, 1, 2, 2), 9.0)
    ci = h.clean_inputs(3, post=post)
    assert ci.clean.shape[2] == 3 and torch.all(ci.clean[:, :, 2] == 9)
    assert ci.indices.clean.tolist() == [0, 19, 23]  # one past the window 20..22
    seeded = sec.F1History(start)
    seeded.seed(torch.ones(1, 16, 4, 2, 2))
    assert seeded.total == 4 and seeded.real().shape[2] == 4


def test_section_for_time():
    assert sec.section_for_time(0.0, 5, 3) == 0
    assert sec.section_for_time(0.39, 5, 3) == 0  # 12 frames per section = 0.4 s
    assert sec.section_for_time(0.4, 5, 3) == 1
    assert sec.section_for_time(99, 5, 3) == 4
    assert sec.section_start_seconds(3, 3) == pytest.approx([0.0, 0.4, 0.8])


def test_soft_append_and_assembler():
    a = torch.zeros(1, 3, 5, 1, 1)
    b = torch.ones(1, 3, 5, 1, 1)
    out = sec.soft_append(a, b, 3)
    assert out.shape[2] == 7
    assert out[0, 0, :, 0, 0].tolist() == pytest.approx([0, 0, 0, 0.5, 1, 1, 1])
    asm = sec.PixelAssembler(prepend=False, overlap=3)
    f1 = asm.add(torch.zeros(1, 3, 7, 1, 1))
    assert f1.shape[2] == 4 and asm.frames_total == 7
    f2 = asm.add(torch.ones(1, 3, 9, 1, 1))
    assert f2.shape[2] == 6 and asm.frames_total == 13 and asm.flush().shape[2] == 3
    asm = sec.PixelAssembler(prepend=True, overlap=3)
    assert asm.add(torch.zeros(1, 3, 3, 1, 1)).shape[2] == 0
    assert asm.add(torch.ones(1, 3, 9, 1, 1)).shape[2] == 6 and asm.frames_total == 9  # 9 + 3 - 3


def test_buckets():
    assert find_bucket(64, 64) == (64, 64)
    assert find_bucket(96, 64) == (64, 96)
    assert find_bucket(64, 96) == (96, 64)
    assert find_bucket(640, 640) == (640, 608)
    assert find_bucket(640, 640, image_hw=(480, 832)) == (480, 832)
    assert len(bucket_list(640)) == 14 and all(h % 16 == 0 and w % 16 == 0 for h, w in bucket_list(320))
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 50:150] = 255
    crop = resize_and_center_crop(img, 64, 64)
    assert crop.shape == (64, 64, 3) and crop.mean() > 250  # the white centre survives the crop


def test_sigmas_and_shift(golden_dir):
    from safetensors.torch import load_file
    golden = load_file(str(golden_dir / "original.safetensors"))
    assert seq_len_for(3, 64, 64) == 48
    assert time_shift_mu(48) == pytest.approx(0.46479166666666666)
    assert torch.equal(flow_sigmas(4, 48), golden["sigmas"])
    real = flow_sigmas(25, seq_len_for(9, 640, 608))
    assert float(np.exp(time_shift_mu(seq_len_for(9, 640, 608)))) == pytest.approx(7.0)
    assert real[0] == 1 and real[-1] == 0 and torch.all(real[1:] < real[:-1])


def test_unipc_exact_on_linear_flow():
    # For x0 prediction constant (denoiser returns a fixed target), the sampler's output is that target.
    target = torch.randn(1, 4, 2, 3, 3)
    out = unipc_sample(lambda x, s: target.clone(), torch.randn_like(target), flow_sigmas(6, 48))
    assert torch.allclose(out, target)


def test_naming(tmp_path):
    assert sanitize_stem("../../etc/passwd") == "etc_passwd"
    assert sanitize_stem("") == "video" and sanitize_stem("CON") == "video_CON"
    assert "/" not in sanitize_stem("a/b\\c:d") and sanitize_stem("x" * 300) == "x" * 80
    (tmp_path / "clip.mp4").write_bytes(b"x")
    assert unique_stem(tmp_path, "clip") == "clip_2"
    meta_dir = tmp_path / "meta"
    meta_dir.mkdir()
    (meta_dir / "take.json").write_text("{}")  # a sidecar in a separate metadata folder also counts
    assert unique_stem(tmp_path, "take") == "take" and unique_stem(tmp_path, "take", extra_folders=(meta_dir,)) \
        == "take_2"


def test_metadata_round_trip_and_errors():
    p = GenerationParams(prompt="x", seed=5, steps=3)
    back = params_from_metadata({"format": "fp-studio/1", "params": p.model_dump(mode="json"), "run": {}})
    assert back == p
    with pytest.raises(MetadataError) as err:
        params_from_metadata(json.dumps({"params": {"steps": 0, "bogus": 1}}))
    assert "steps" in str(err.value) and "bogus" in str(err.value)



def test_one_metadata_parser_strict_or_lenient(tmp_path):
    """Strict (CLI --params) refuses what lenient (the Generate form) drops with a note; same parser."""
    from modules.framepack.metadata import parse_metadata

    text = json.dumps({"parameters": {"prompt": "hi", "steps": 9, "foo": 1, "generation_type": "Video",
                                      "input_video": str(tmp_path / "gone.mp4")}})
    with pytest.raises(MetadataError) as err:
        parse_metadata(text)
    assert "foo: Extra inputs are not permitted" in err.value.problems
    params, notes = parse_metadata(text, lenient=True)
    # The source video is gone: the type stays Video (a form draft) and the note says what is missing.
    assert (params.prompt, params.steps, params.generation_type.value, params.input_video) == ("hi", 9, "Video", None)
    assert notes == ["ignored fields: foo", "input_video: file not found, left empty"]
    with pytest.raises(MetadataError, match="input_video: required"):  # strict still needs the video
        parse_metadata(json.dumps({"params": {"prompt": "hi", "generation_type": "Video"}}))
    for bad, needle in (("{oops", "json: not valid JSON"), ("[1]", "root: a JSON object is expected"),
                        ('{"name": "x"}', "no FP-Studio parameters found")):
        with pytest.raises(MetadataError, match=needle):
            parse_metadata(bad, lenient=True)


def test_one_error_formatter():
    """Every pydantic error reads "field: sentence"; a model-level check's own "field: ..." names the field."""
    from pydantic import ValidationError

    from modules.errors import field_messages, format_errors

    with pytest.raises(ValidationError) as err:
        GenerationParams.model_validate({"generation_type": "Video", "steps": 0, "bogus": 1})
    assert format_errors(err.value) == ["steps: Input should be greater than or equal to 1",
                                        "bogus: Extra inputs are not permitted"]
    with pytest.raises(ValidationError) as err:
        GenerationParams.model_validate({"generation_type": "Video"})
    [(field, message)] = field_messages(err.value)
    assert field == "input_video" and message == "required for generation type 'Video'"
    with pytest.raises(ValidationError) as err:
        GenerationParams.model_validate({"steps": 0, "cfg": -5, "seed": -1})
    assert format_errors(err.value, limit=1) == [format_errors(err.value)[0], "... and 2 more"]
