"""LoRAs on the tiny FramePack transformer: three file formats, weights, no reloads, refusals."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.framepack.params import LoraSpec
from modules.models import lora as lora_mod
from modules.models.lora import LoraApplier, read_lora
from modules.models.lora_files import LoraFormatError, list_loras

RANK, ALPHA = 4, 2.0  # scale alpha / rank = 0.5
H = 20  # tiny hidden size (2 heads x 10)

# One logical LoRA in the original HunyuanVideo layout: module -> (in, out) of the fused Linear.
ORIGINAL_SHAPES = {
    "double_blocks.0.img_attn_qkv": (H, 3 * H),
    "double_blocks.0.txt_attn_qkv": (H, 3 * H),
    "double_blocks.0.img_attn_proj": (H, H),
    "double_blocks.0.img_mlp.fc1": (H, 4 * H),
    "double_blocks.0.img_mod.linear": (H, 6 * H),
    "single_blocks.0.linear1": (H, 7 * H),
    "single_blocks.0.linear2": (5 * H, H),
    "single_blocks.0.modulation.linear": (H, 3 * H),
    "txt_in.individual_token_refiner.blocks.0.self_attn_qkv": (H, 3 * H),
    "final_layer.linear": (H, 64),
    "final_layer.adaLN_modulation.1": (H, 2 * H),
}


def _diffusers_parts(module: str, b: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Hand-written expectation of where each original module's B rows go in diffusers' model."""
    q = lambda base, names: [(f"{base}.{n}", p) for n, p in zip(names, b.chunk(3, 0))]  # noqa: E731
    if module == "double_blocks.0.img_attn_qkv":
        return q("transformer_blocks.0.attn", ["to_q", "to_k", "to_v"])
    if module == "double_blocks.0.txt_attn_qkv":
        return q("transformer_blocks.0.attn", ["add_q_proj", "add_k_proj", "add_v_proj"])
    if module == "txt_in.individual_token_refiner.blocks.0.self_attn_qkv":
        return q("context_embedder.token_refiner.refiner_blocks.0.attn", ["to_q", "to_k", "to_v"])
    if module == "single_blocks.0.linear1":
        parts = torch.split(b, [H, H, H, 4 * H])
        names = ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"]
        return [(f"single_transformer_blocks.0.{n}", p) for n, p in zip(names, parts)]
    if module == "final_layer.adaLN_modulation.1":
        shift, scale = b.chunk(2, 0)
        return [("norm_out.linear", torch.cat([scale, shift]))]
    simple = {
        "double_blocks.0.img_attn_proj": "transformer_blocks.0.attn.to_out.0",
        "double_blocks.0.img_mlp.fc1": "transformer_blocks.0.ff.net.0.proj",
        "double_blocks.0.img_mod.linear": "transformer_blocks.0.norm1.linear",
        "single_blocks.0.linear2": "single_transformer_blocks.0.proj_out",
        "single_blocks.0.modulation.linear": "single_transformer_blocks.0.norm.linear",
        "final_layer.linear": "proj_out",
    }
    return [(simple[module], b)]


@pytest.fixture(scope="module")
def logical_lora() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    return {m: (torch.randn(RANK, i, generator=g) * 0.3, torch.randn(o, RANK, generator=g) * 0.3)
            for m, (i, o) in ORIGINAL_SHAPES.items()}


def write_format(fmt: str, lora: dict, folder: Path, name: str = "style.safetensors") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sd: dict[str, torch.Tensor] = {}
    for module, (a, b) in lora.items():
        if fmt == "diffusers":  # PEFT keys, alpha folded into B by the writer (no alpha key)
            for target, part in _diffusers_parts(module, b * (ALPHA / RANK)):
                sd[f"transformer.{target}.lora_A.weight"] = a.clone()
                sd[f"transformer.{target}.lora_B.weight"] = part.clone()
        elif fmt == "diffusion_pipe":  # original layout, fused qkv, no alpha
            sd[f"diffusion_model.{module}.lora_A.weight"] = a.clone()
            sd[f"diffusion_model.{module}.lora_B.weight"] = (b * (ALPHA / RANK)).clone()
        elif fmt == "musubi":  # original layout with underscores, down/up/alpha
            key = "lora_unet_" + module.replace(".", "_")
            sd[f"{key}.lora_down.weight"] = a.clone()
            sd[f"{key}.lora_up.weight"] = b.clone()
            sd[f"{key}.alpha"] = torch.tensor(ALPHA)
        elif fmt == "musubi_framepack":  # musubi's FramePack LoRAs: diffusers module names, underscored
            for target, part in _diffusers_parts(module, b):
                key = "lora_unet_" + target.replace(".", "_")
                sd[f"{key}.lora_down.weight"] = a.clone()
                sd[f"{key}.lora_up.weight"] = part.clone()
                sd[f"{key}.alpha"] = torch.tensor(ALPHA)
        else:
            raise AssertionError(fmt)
    path = folder / name
    save_file(sd, str(path))
    return path


@pytest.fixture()
def applier(tiny_transformer):
    a = LoraApplier(tiny_transformer)
    a.clear()
    yield a
    a.clear()


FORMATS = ["diffusers", "diffusion_pipe", "musubi", "musubi_framepack"]


def test_read_lora_normalises_and_splits(tmp_path, logical_lora):
    path = write_format("musubi", logical_lora, tmp_path)
    sd = read_lora(path)
    a, b = logical_lora["single_blocks.0.linear1"]
    scaled = b * 0.5
    assert torch.equal(sd["single_transformer_blocks.0.attn.to_k.lora_A.weight"], a)
    assert torch.equal(sd["single_transformer_blocks.0.attn.to_k.lora_B.weight"], scaled[H:2 * H])
    assert torch.equal(sd["single_transformer_blocks.0.proj_mlp.lora_B.weight"], scaled[3 * H:])
    a, b = logical_lora["final_layer.adaLN_modulation.1"]
    assert torch.equal(sd["norm_out.linear.lora_B.weight"], torch.cat([b[H:], b[:H]]) * 0.5)
    # 11 original modules -> 3 + 3 + 1 + 1 + 1 + 4 + 1 + 1 + 3 + 1 + 1 = 20 diffusers modules
    assert len(sd) == 2 * 20
    assert all(k.endswith((".lora_A.weight", ".lora_B.weight")) for k in sd)


def test_formats_give_same_output(applier, run_forward, tmp_path, logical_lora):
    base = run_forward()
    outs = {}
    for fmt in FORMATS:
        write_format(fmt, logical_lora, tmp_path / fmt)
        applier.apply([LoraSpec(name="style.safetensors", weight=1.0)], tmp_path / fmt)
        outs[fmt] = run_forward()
    ref = outs["diffusers"]
    assert (ref - base).abs().max() > 1e-2  # the LoRA does something
    for fmt in FORMATS[1:]:
        torch.testing.assert_close(outs[fmt], ref, atol=1e-5, rtol=0, msg=f"{fmt} differs from diffusers")


def test_weight_changes_output_and_zero_is_base(applier, run_forward, tmp_path, logical_lora):
    write_format("musubi", logical_lora, tmp_path)
    base = run_forward()
    dist = {}
    for w in (0.5, 1.0, 2.0):
        applier.apply([LoraSpec(name="style.safetensors", weight=w)], tmp_path)
        dist[w] = (run_forward() - base).abs().mean().item()
    assert 0 < dist[0.5] < dist[1.0] < dist[2.0]
    applier.apply([LoraSpec(name="style.safetensors", weight=0.0)], tmp_path)
    assert torch.equal(run_forward(), base)
    assert applier.active == [LoraSpec(name="style.safetensors", weight=0.0)]
    applier.clear()
    assert torch.equal(run_forward(), base)
    assert applier.active == []


def test_reweight_reads_nothing_and_keeps_base_weights(applier, tiny_transformer, run_forward, tmp_path,
                                                        logical_lora, monkeypatch):
    write_format("diffusion_pipe", logical_lora, tmp_path)
    params = dict(tiny_transformer.named_parameters())
    ptrs = {n: p.data_ptr() for n, p in params.items()}
    values = {n: p.detach().clone() for n, p in params.items()}
    applier.apply([LoraSpec(name="style.safetensors", weight=1.0)], tmp_path)
    out1 = run_forward()
    reads = applier.files_read

    def no_read(*args, **kwargs):
        raise AssertionError("LoRA file read again on a weight change")
    monkeypatch.setattr(lora_mod, "read_lora", no_read)
    monkeypatch.setattr(lora_mod, "safe_open", no_read)
    # A second applier on the same transformer shares the state (the manager may create one per job).
    LoraApplier(tiny_transformer).apply([LoraSpec(name="style.safetensors", weight=0.25)], tmp_path)
    out025 = run_forward()
    applier.apply([LoraSpec(name="style.safetensors", weight=1.0)], tmp_path)
    assert torch.equal(run_forward(), out1)
    assert not torch.equal(out025, out1)
    assert applier.files_read == reads
    for n, p in tiny_transformer.named_parameters():
        assert p.data_ptr() == ptrs[n], n
        assert torch.equal(p.detach(), values[n]), n


def test_new_set_reads_only_new_file(applier, tiny_transformer, run_forward, tmp_path, logical_lora):
    write_format("diffusers", logical_lora, tmp_path, "a.safetensors")
    g = torch.Generator().manual_seed(99)
    other = {m: (torch.randn_like(a), torch.randn_like(b) * 0.3) for m, (a, b) in logical_lora.items()
             if m.startswith("double_blocks")}
    for m, (a, b) in other.items():
        other[m] = (torch.randn(a.shape, generator=g) * 0.3, b)
    write_format("musubi", other, tmp_path, "b.safetensors")
    ptrs = {n: p.data_ptr() for n, p in tiny_transformer.named_parameters()}

    applier.apply([LoraSpec(name="a.safetensors", weight=1.0)], tmp_path)
    out_a = run_forward()
    reads = applier.files_read
    applier.apply([LoraSpec(name="a.safetensors", weight=1.0), LoraSpec(name="b.safetensors", weight=1.5)],
                  tmp_path)
    assert applier.files_read == reads + 1  # only b was read
    out_ab = run_forward()
    assert (out_ab - out_a).abs().max() > 1e-3
    applier.apply([LoraSpec(name="a.safetensors", weight=1.0)], tmp_path)
    assert torch.equal(run_forward(), out_a)
    assert {n: p.data_ptr() for n, p in tiny_transformer.named_parameters()} == ptrs
    assert [s.name for s in applier.active] == ["a.safetensors"]


def _junk_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    p = folder / "pickled.safetensors"
    p.write_bytes(pickle.dumps({"x": [1, 2, 3]}, protocol=4))
    files["pickle"] = p
    p = folder / "torchsave.safetensors"
    torch.save({"w": torch.zeros(2)}, p)
    files["torch.save"] = p
    p = folder / "random.safetensors"
    p.write_bytes(bytes(range(256)) * 4)
    files["random"] = p
    p = folder / "empty.safetensors"
    p.write_bytes(b"")
    files["empty"] = p
    p = folder / "foreign.safetensors"
    save_file({"encoder.layer.0.weight": torch.zeros(2, 2), "decoder.bias": torch.zeros(2)}, str(p))
    files["foreign keys"] = p
    p = folder / "halfpair.safetensors"
    save_file({"transformer.proj_out.lora_A.weight": torch.zeros(2, H)}, str(p))
    files["missing B"] = p
    p = folder / "wrongshape.safetensors"
    save_file({"transformer.proj_out.lora_A.weight": torch.zeros(2, 33),
               "transformer.proj_out.lora_B.weight": torch.zeros(64, 2)}, str(p))
    files["different model"] = p
    return files


def test_junk_and_pickles_are_refused_with_file_name(applier, run_forward, tmp_path, logical_lora):
    write_format("diffusers", logical_lora, tmp_path, "good.safetensors")
    applier.apply([LoraSpec(name="good.safetensors", weight=1.0)], tmp_path)
    good = run_forward()
    for what, path in _junk_files(tmp_path).items():
        with pytest.raises(LoraFormatError) as info:
            applier.apply([LoraSpec(name="good.safetensors", weight=0.5), LoraSpec(name=path.name)], tmp_path)
        assert path.name in str(info.value), what
        # A refused file changes nothing: the previous set and weights stay active.
        assert applier.active == [LoraSpec(name="good.safetensors", weight=1.0)], what
    assert "pickle" in str(pytest.raises(LoraFormatError, read_lora, tmp_path / "pickled.safetensors").value)
    assert torch.equal(run_forward(), good)


def test_names_must_be_safetensors_in_folder(applier, tmp_path, logical_lora):
    write_format("diffusers", logical_lora, tmp_path / "loras")
    (tmp_path / "loras" / "notes.txt").write_text("x")
    (tmp_path / "loras" / "old.pt").write_bytes(b"\x80\x04")
    assert list_loras(tmp_path / "loras") == ["style.safetensors"]
    for bad in ("../loras/style.safetensors", "/etc/passwd", "old.pt", "missing.safetensors", "a/b.safetensors"):
        with pytest.raises(LoraFormatError) as info:
            applier.apply([LoraSpec(name=bad)], tmp_path / "loras")
        assert bad in str(info.value)
    with pytest.raises(LoraFormatError, match="twice"):
        applier.apply([LoraSpec(name="style.safetensors"), LoraSpec(name="style.safetensors")],
                      tmp_path / "loras")
