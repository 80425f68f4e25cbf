"""A real Grid job on the tiny models: two cells over LoRA weight 0 and 1, through Engine and ModelManager."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from modules.framepack.engine import Engine
from modules.framepack.outputs import OutputOptions
from modules.framepack.events import DoneEvent, StepEvent
from modules.media.grid_video import layout_grid
from modules.framepack.params import GenerationParams, GenerationType, GridAxis, LoraSpec
from modules.media.video_io import probe_video, read_video
from modules.models.manager import ModelManager, RuntimeConfig
from modules.models.registry import ModelSet


def _lora(path):
    g = torch.Generator().manual_seed(3)
    sd = {}
    for i, o in (("img_attn_qkv", 60), ("img_mlp.fc1", 80)):
        key = f"diffusion_model.double_blocks.0.{i}"
        sd[f"{key}.lora_A.weight"] = torch.randn(4, 20, generator=g) * 0.5
        sd[f"{key}.lora_B.weight"] = torch.randn(o, 4, generator=g) * 0.5
    save_file(sd, str(path))


@pytest.mark.slow
def test_real_grid_two_cells(tmp_path, golden_dir):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    lora_dir = tmp_path / "loras"
    lora_dir.mkdir()
    _lora(lora_dir / "style.safetensors")
    manager = ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu", lora_dir=lora_dir))
    params = GenerationParams(
        generation_type=GenerationType.GRID, prompt="a girl dances", start_image=golden_dir / "start_image_64x64.png",
        width=64, height=64, total_seconds=1.0, steps=2, seed=5, loras=[LoraSpec(name="style.safetensors")],
        grid_x=GridAxis(parameter="lora_weight", values=[0, 1]))
    out = OutputOptions(output_dir=tmp_path / "out", work_dir=tmp_path / "work", crf=10, save_metadata=True,
                        cleanup_videos=True, name="real_grid")
    events = list(Engine(manager).generate(params, out, None))
    done = events[-1]
    assert isinstance(done, DoneEvent)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [(e.section, e.step) for e in steps] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert {e.total_sections for e in steps} == {2}

    cells = sorted((tmp_path / "out" / "real_grid_cells").glob("*.mp4"))
    assert [c.name for c in cells] == ["real_grid_x0_y0.mp4", "real_grid_x1_y0.mp4"]
    infos = [probe_video(c) for c in cells]
    # 1 s with latent window 9: one section, 9 latent frames + the start latent -> 4 * 9 + 1 pixel frames
    assert [(i.width, i.height, i.frames) for i in infos] == [(64, 64, 37)] * 2

    frames, fps = read_video(done.result.video)
    layout = layout_grid(1, 2, 64, 64, "LoRA weight", ["0", "1"], None, None)
    assert fps == 30 and frames.shape == (37, layout.height, layout.width, 3)
    tiles = [frames[:, y:y + h, x:x + w].astype(int) for x, y, w, h in
             (layout.tile_box(0, 0), layout.tile_box(0, 1))]
    cell0, _ = read_video(cells[0])
    assert np.abs(tiles[0] - cell0.astype(int)).mean() < 4  # the tile is the cell video (re-encoded)
    assert np.abs(tiles[0] - tiles[1]).mean() > 1  # the LoRA at weight 1 changes the video
    meta = json.loads(done.result.metadata.read_text())
    assert [c["x_value"] for c in meta["derived"]["grid"]["cells"]] == [0.0, 1.0]
    assert manager.active_loras == [LoraSpec(name="style.safetensors", weight=1.0)]
