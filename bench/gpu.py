"""GPU benchmark of one FramePack section step at full size, with random weights (no download).

    python bench/gpu.py                 # CUDA: full-size transformer, 640x640 bucket, latent window 9
    python bench/gpu.py --tiny          # tiny config (automatic without CUDA); the tests run this on CPU

Builds diffusers' HunyuanVideoFramepackTransformer3DModel from the real config (24 heads x 128, 20 dual +
40 single blocks, 2 refiner layers, patch 2/1, text 4096, pooled 768, RoPE theta 256 axes (16, 56, 56),
image_proj_dim 1152, clean-latent embedder) on the meta device, materialises it directly on the GPU in bf16
and times one transformer forward (= one sampler step at cfg 1; 19,149 tokens) for every placement x attention
backend: all blocks resident, and under a VRAM cap (torch.cuda.set_per_process_memory_fraction plus the
preserved-memory setting) with modules.memory's block streaming. Prints s/step, achieved TFLOP/s against the
FLOPs the step needs (~531 TFLOP), and peak allocated memory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REAL_CONFIG = dict(
    in_channels=16, out_channels=16, num_attention_heads=24, attention_head_dim=128, num_layers=20,
    num_single_layers=40, num_refiner_layers=2, mlp_ratio=4.0, patch_size=2, patch_size_t=1, qk_norm="rms_norm",
    guidance_embeds=True, text_embed_dim=4096, pooled_projection_dim=768, rope_theta=256.0,
    rope_axes_dim=(16, 56, 56), has_image_proj=True, image_proj_dim=1152, has_clean_x_embedder=True,
)
# The shipped tiny test transformer's config (modules/models/tiny_hub), with a few more blocks to stream.
TINY_CONFIG = dict(REAL_CONFIG, num_attention_heads=2, attention_head_dim=10, num_layers=2, num_single_layers=3,
                   num_refiner_layers=1, text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 4, 4),
                   image_proj_dim=32)


@dataclass(frozen=True)
class Shape:
    """One Original section's transformer call: bucket, latent window, conditioning sizes."""

    height: int
    width: int
    window: int
    text_tokens: int  # valid Llama tokens after the template crop
    image_tokens: int  # SigLIP tokens (729 for 384 px / patch 14)

    def latent_tokens(self, patch: int = 2) -> int:
        h, w = self.height // 8 // patch, self.width // 8 // patch
        clean = 2 * h * w
        two_x = math.ceil(2 / 2) * math.ceil(h / 2) * math.ceil(w / 2)
        four_x = math.ceil(16 / 4) * math.ceil(h / 4) * math.ceil(w / 4)
        return self.window * h * w + clean + two_x + four_x

    def tokens(self) -> int:
        return self.latent_tokens() + self.text_tokens + self.image_tokens


REAL_SHAPE = Shape(640, 640, 9, text_tokens=20, image_tokens=729)  # 19,149 tokens
TINY_SHAPE = Shape(64, 64, 3, text_tokens=14, image_tokens=64)

BACKENDS = {  # diffusers attention backend -> (module it needs, pip package)
    "native": (None, None),
    "_native_cudnn": (None, None),
    "flash": ("flash_attn", "flash-attn"),
    "_flash_3": ("flash_attn_interface", "flash-attn 3 (hopper build)"),
    "sage": ("sageattention", "sageattention"),
}


def forward_flops(cfg: dict, tokens: int) -> float:
    """Matmul FLOPs of one forward: per block 2*N*(4+2r)*D^2 (projections and MLP) + 4*N^2*D (attention)."""
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    r = cfg["mlp_ratio"]
    blocks = cfg["num_layers"] + cfg["num_single_layers"]
    return blocks * (2 * tokens * (4 + 2 * r) * d * d + 4 * tokens * tokens * d)


def missing_requirements() -> list[str]:
    """What a torch-only GPU machine must add (bring these wheels along to an offline machine)."""
    need = []
    if importlib.util.find_spec("torch") is None:
        need.append("torch (a CUDA build, e.g. torch==2.14.1 from the cu128 index)")
    if importlib.util.find_spec("diffusers") is None:
        need.append("diffusers==0.42.1 with its dependencies: huggingface_hub, safetensors, regex, requests, "
                    "filelock, numpy, Pillow, importlib_metadata")
    return need


def build_transformer(cfg: dict, device, dtype, seed: int = 0):
    """Construct on the meta device (no memory, no init), then allocate on `device` and fill in place."""
    import torch
    from diffusers import HunyuanVideoFramepackTransformer3DModel

    with torch.device("meta"):
        model = HunyuanVideoFramepackTransformer3DModel(**cfg)
    model = model.to(dtype=dtype).to_empty(device=device).eval().requires_grad_(False)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.fill_(1.0 if "norm" in name and name.endswith("weight") else 0.0)
            else:
                fan_in = p[0].numel()
                p.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=gen)
        for b in model.buffers():
            b.zero_()
    return model


def make_inputs(cfg: dict, shape: Shape, device, dtype, seed: int = 0) -> dict:
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)

    def rnd(*s):
        return torch.randn(*s, generator=g).to(device=device, dtype=dtype)

    h, w, t = shape.height // 8, shape.width // 8, shape.window
    c = cfg["in_channels"]
    mask = torch.zeros(1, 512, dtype=torch.bool, device=device)
    mask[:, : shape.text_tokens] = True
    # Original, last section (padding 0): indices [start | latent x t | post | 2x x 2 | 4x x 16]
    idx = torch.arange(0, 1 + t + 1 + 2 + 16, device=device)
    return dict(
        hidden_states=rnd(1, c, t, h, w), timestep=torch.tensor([900.0], device=device, dtype=dtype),
        encoder_hidden_states=rnd(1, 512, cfg["text_embed_dim"]), encoder_attention_mask=mask,
        pooled_projections=rnd(1, cfg["pooled_projection_dim"]),
        image_embeds=rnd(1, shape.image_tokens, cfg["image_proj_dim"]),
        indices_latents=idx[1 : 1 + t], guidance=torch.tensor([10000.0], device=device, dtype=dtype),
        latents_clean=rnd(1, c, 2, h, w), indices_latents_clean=torch.stack([idx[0], idx[1 + t]]),
        latents_history_2x=rnd(1, c, 2, h, w), indices_latents_history_2x=idx[2 + t : 4 + t],
        latents_history_4x=rnd(1, c, 16, h, w), indices_latents_history_4x=idx[4 + t : 20 + t],
        return_dict=False,
    )


@dataclass
class Result:
    placement: str
    backend: str
    s_per_step: float | None
    tflops: float | None
    peak_alloc_gb: float | None
    resident_blocks: int
    streamed_blocks: int
    max_abs_diff: float | None = None  # against the same backend's first placement (same inputs and weights)
    note: str = ""


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(model, inputs: dict, device, steps: int, warmup: int):
    import torch

    with torch.no_grad():
        for _ in range(warmup):
            out = model(**inputs)[0]
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(steps):
            out = model(**inputs)[0]
        _sync(device)
    return (time.perf_counter() - start) / steps, out


def backend_status(name: str, device) -> str | None:
    """None when usable, else why not."""
    module, package = BACKENDS[name]
    if name != "native" and device.type != "cuda":
        return "needs CUDA"
    if module is not None and importlib.util.find_spec(module) is None:
        return f"pip install {package}"
    return None


def run(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny config (automatic without CUDA)")
    parser.add_argument("--steps", type=int, default=3, help="timed forwards per configuration")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--cap-gb", type=float, default=6.0, help="VRAM cap for the low-memory run")
    parser.add_argument("--preserved-gb", type=float, default=1.5,
                        help="GPU Inference Preserved Memory for the capped run (kept free for activations)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated diffusers backends")
    parser.add_argument("--skip-resident", action="store_true")
    parser.add_argument("--skip-capped", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    missing = missing_requirements()
    if missing:
        raise SystemExit("bench/gpu.py needs: " + "; ".join(missing))
    import torch

    from modules.memory.planner import GIB, estimate_activation_bytes, plan_residency
    from modules.memory.streaming import BlockStreamer, describe_transformer

    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # the backend API's "experimental" notices would drown the table
    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda" if cuda else "cpu")
    cfg, shape = (REAL_CONFIG, REAL_SHAPE) if cuda else (TINY_CONFIG, TINY_SHAPE)
    dtype = torch.bfloat16 if cuda else torch.float32
    tokens = shape.tokens()
    flops = forward_flops(cfg, tokens)
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"device: {name}; torch {torch.__version__}; {'full-size' if cuda else 'tiny'} transformer, "
          f"{shape.width}x{shape.height} window {shape.window}: {tokens:,} tokens, "
          f"{flops / 1e12:.1f} TFLOP per forward", flush=True)

    built_on = device
    if cuda:
        free, _total = torch.cuda.mem_get_info(device)
        need = 13.1e9 * 2 + 4 * GIB  # ~13B bf16 weights + activations
        if free < need:
            built_on = torch.device("cpu")  # smaller card: materialise on the CPU, stream the blocks from there
    t0 = time.perf_counter()
    model = build_transformer(cfg, built_on, dtype)
    inputs = make_inputs(cfg, shape, device, dtype)
    sizes, fixed = describe_transformer(model)
    print(f"built in {time.perf_counter() - t0:.1f} s: {sum(sizes) / GIB:.2f} GB in {len(sizes)} blocks + "
          f"{fixed / GIB:.2f} GB other", flush=True)

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    usable = []
    for b in backends:
        why = backend_status(b, device) if b in BACKENDS else "unknown backend"
        if why:
            print(f"backend {b}: skipped ({why})")
        else:
            usable.append(b)

    placements = []
    if not args.skip_resident:
        if built_on == device:
            placements.append(("resident", plan_residency(sizes, fixed, 10**15, 0)))
        else:
            print("resident: skipped (the model does not fit on this GPU)")
    if not args.skip_capped:
        if cuda:
            on_gpu = sum(t.numel() * t.element_size() for t in model.parameters() if t.device.type == "cuda")
            other = torch.cuda.memory_allocated(device) - on_gpu  # inputs and anything else not the model
            inner = cfg["num_attention_heads"] * cfg["attention_head_dim"]
            plan = plan_residency(sizes, fixed, int(args.cap_gb * GIB) - other, args.preserved_gb,
                                  estimate_activation_bytes(tokens, inner, cfg["mlp_ratio"]))
            if not plan.fits:
                print(f"capped: {args.cap_gb:g} GB cannot hold one block beside the reserve; expect OOM")
            placements.append((f"capped {args.cap_gb:g} GB", plan))
        else:
            placements.append(("streamed (1 slot)", plan_residency(sizes, fixed, 10**15, 0, force_streaming=True,
                                                                   prefetch=False)))
            placements.append(("streamed (prefetch)", plan_residency(sizes, fixed, 10**15, 0,
                                                                     force_streaming=True)))

    results: list[Result] = []
    reference: dict[str, object] = {}  # backend -> output of its first placement (streaming must not change it)
    for label, plan in placements:
        streamer = BlockStreamer(model, device, plan).attach()
        try:
            if cuda and label.startswith("capped"):
                torch.cuda.empty_cache()
                torch.cuda.set_per_process_memory_fraction(
                    min(1.0, args.cap_gb * GIB / torch.cuda.get_device_properties(device).total_memory), device)
            for b in usable:
                note = ""
                try:
                    if hasattr(model, "set_attention_backend"):
                        model.set_attention_backend(b)
                    sec, out = time_forward(model, inputs, device, args.steps, args.warmup)
                except Exception as exc:  # an installed backend that cannot run here (arch, shapes, OOM)
                    results.append(Result(label, b, None, None, None, sum(plan.resident), len(plan.streamed),
                                          note=f"failed: {type(exc).__name__}: {str(exc)[:120]}"))
                    print(f"{label:22s} {b:14s} failed: {exc}", flush=True)
                    if cuda:
                        torch.cuda.empty_cache()
                    continue
                diff = None
                if b not in reference:
                    reference[b] = out.float().cpu()
                else:
                    diff = float((out.float().cpu() - reference[b]).abs().max())
                peak = torch.cuda.max_memory_allocated(device) / GIB if cuda else None
                r = Result(label, b, sec, flops / sec / 1e12, peak, sum(plan.resident), len(plan.streamed),
                           diff, note)
                results.append(r)
                print(f"{label:22s} {b:14s} {sec:8.3f} s/step {r.tflops:8.3g} TFLOP/s"
                      + (f"  peak {peak:6.2f} GB" if peak is not None else "")
                      + f"  resident {r.resident_blocks}/{len(sizes)}"
                      + (f"  max|diff| {diff:.3g}" if diff is not None else ""), flush=True)
        finally:
            streamer.detach()
            if cuda:
                torch.cuda.set_per_process_memory_fraction(1.0, device)
    if hasattr(model, "reset_attention_backend"):
        model.reset_attention_backend()
    if args.json:
        args.json.write_text(json.dumps({"device": name, "tokens": tokens, "tflop_per_forward": flops / 1e12,
                                         "results": [asdict(r) for r in results]}, indent=2))
    return results


def main(argv: list[str] | None = None) -> int:
    results = run(argv)
    return 0 if any(r.s_per_step is not None for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
