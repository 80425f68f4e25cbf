"""Post-processing model weights: download at first use, verify sha256, load safely, cache as safetensors.

Flow for a PyTorch checkpoint (the official files are pickled .pth/.pkl):
1. `<folder>/<key>.safetensors` exists -> load it (no pickle involved) and check its recorded source hash.
2. Otherwise use `<folder>/<filename>` if the user placed it there, else download it (progress reported)
   to a temporary name.
3. Check its sha256 against the published value below. A mismatch deletes the download and fails.
   An entry without a published hash is refused unless the caller opts in (`allow_unverified`).
4. Only then `torch.load(weights_only=True)`, unwrap `params_ema`/`params`, save as safetensors
   (atomically), and delete the pickle.
ONNX files (the face detector) are verified the same way and kept as they are (no pickle).
`WeightStore.fetch` does the same ahead of time for `python -m studio download --post` (`offered_weights()`);
with the tiny model set `tiny.TinyWeights` replaces the store and nothing is read or downloaded.

Where each hash was published (checked 2026-11-25; every value appears identically in each source):
- RealESRGAN_x4plus, RealESRGAN_x2plus, RealESRGAN_x4plus_anime_6B, realesr-animevideov3,
  realesr-general-x4v3, realesr-general-wdn-x4v3: OpenModelDB (github.com/OpenModelDB/open-model-database,
  data/models/*.json "sha256"); the first three also in the Arch AUR PKGBUILD of python-realesrgan.
- RealESRNet_x4plus: Arch AUR PKGBUILD of python-realesrgan (sha256sums).
- GFPGANv1.4: TencentARC publishes no checksum; the value is the one pinned by several independent public
  download manifests (e.g. sd-webui style model lists, face-restoration tools) for this exact release URL.
- YuNet face detector: the Git LFS pointer in github.com/opencv/opencv_zoo (oid sha256).
- RIFE 4.26 (IFNet): the ccvfi package's model zoo config (ccvfi/config/rife_config.py, `hash`).
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from modules.media.video_io import atomic_output

from .common import PostProcessError, ProgressCallback, report

log = logging.getLogger(__name__)

_ESRGAN = "https://github.com/xinntao/Real-ESRGAN/releases/download"


@dataclass(frozen=True)
class WeightFile:
    key: str
    url: str
    sha256: str | None  # None: no published value found -> refused unless allow_unverified
    size: int | None
    kind: Literal["torch", "onnx"] = "torch"

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


WEIGHTS: dict[str, WeightFile] = {w.key: w for w in (
    WeightFile("RealESRGAN_x4plus", f"{_ESRGAN}/v0.1.0/RealESRGAN_x4plus.pth",
               "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1", 67040989),
    WeightFile("RealESRNet_x4plus", f"{_ESRGAN}/v0.1.1/RealESRNet_x4plus.pth",
               "a820b9bde89a874d7599d545567308ce6c128fc8754a53208eda016d40aa81df", 67040989),
    WeightFile("RealESRGAN_x2plus", f"{_ESRGAN}/v0.2.1/RealESRGAN_x2plus.pth",
               "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb", 67061725),
    WeightFile("RealESRGAN_x4plus_anime_6B", f"{_ESRGAN}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
               "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da", 17938799),
    WeightFile("realesr-animevideov3", f"{_ESRGAN}/v0.2.5.0/realesr-animevideov3.pth",
               "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d", 2504012),
    WeightFile("realesr-general-x4v3", f"{_ESRGAN}/v0.2.5.0/realesr-general-x4v3.pth",
               "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292", 4885111),
    WeightFile("realesr-general-wdn-x4v3", f"{_ESRGAN}/v0.2.5.0/realesr-general-wdn-x4v3.pth",
               "1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca", 4885111),
    WeightFile("GFPGANv1.4", "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
               "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad", 348632874),
    WeightFile("yunet_2023mar",
               "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
               "face_detection_yunet_2023mar.onnx",
               "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4", 232589, kind="onnx"),
    WeightFile("RIFE_IFNet_v426_heavy",
               "https://github.com/EutropicAI/ccvfi/releases/download/model_zoo/RIFE_IFNet_v426_heavy.pkl",
               "4cc518e172156ad6207b9c7a43364f518832d83a4325d484240493a9e2980537", None),
)}


# The non-upscaler files, by the role that loads them (the upscalers' keys are in network_options.UPSCALE_MODELS).
GFPGAN_WEIGHTS = "GFPGANv1.4"
FACE_DETECTOR_WEIGHTS = "yunet_2023mar"
RIFE_WEIGHTS = "RIFE_IFNet_v426_heavy"


def offered_weights() -> list[WeightFile]:
    """Every file the Post-processing tab can need, in download order: each Real-ESRGAN model it offers, GFPGAN
    and its face detector, RIFE. What `python -m studio download --post` fetches and the README table lists."""
    from .network_options import UPSCALE_MODELS

    keys = [k for m in UPSCALE_MODELS.values() for k in m.weights]
    keys += [GFPGAN_WEIGHTS, FACE_DETECTOR_WEIGHTS, RIFE_WEIGHTS]
    return [WEIGHTS[k] for k in dict.fromkeys(keys)]


def weights_table_markdown(folder: str = "DATA/weights/postprocess") -> str:
    """The README's table of post-processing files for offline copying, generated from WEIGHTS (a test keeps the
    README equal to it, so the two never drift)."""
    rows = ["| File | Size | sha256 (first 16) | URL | Place it at |", "| --- | --- | --- | --- | --- |"]
    for w in offered_weights():
        size = f"{w.size / 1e6:.1f} MB ({w.size} bytes)" if w.size else "not published"
        rows.append(f"| `{w.filename}` | {size} | `{(w.sha256 or 'none')[:16]}` | {w.url} | `{folder}/{w.filename}` |")
    return "\n".join(rows)


class WeightsError(PostProcessError):
    """Weights missing, unverifiable, corrupt or not downloadable."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _unwrap(obj: object) -> dict[str, torch.Tensor]:
    """Official checkpoints nest the weights under params_ema (preferred) or params."""
    if isinstance(obj, dict):
        for key in ("params_ema", "params", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError("checkpoint does not hold a flat dict of tensors")
    return obj  # type: ignore[return-value]


class WeightSource(Protocol):
    """Where the networks get their weights: the real files (WeightStore) or the tiny set (tiny.TinyWeights);
    `tiny.weight_source` picks one."""

    tiny: bool

    def state_dict(self, spec: WeightFile | str, progress: ProgressCallback | None = None) -> dict[str, torch.Tensor]:
        ...

    def verified_file(self, spec: WeightFile | str, progress: ProgressCallback | None = None) -> Path:
        ...


class WeightStore:
    """Finds, downloads, verifies and caches the files in WEIGHTS (or any WeightFile) under `folder`."""

    tiny = False

    def __init__(self, folder: Path, *, allow_unverified: bool = False, timeout: float = 60.0) -> None:
        self.folder = Path(folder)
        self.allow_unverified = allow_unverified
        self.timeout = timeout

    def cached_path(self, spec: WeightFile) -> Path:
        return self.folder / (f"{spec.key}.safetensors" if spec.kind == "torch" else spec.filename)

    def state_dict(self, spec: WeightFile | str, progress: ProgressCallback | None = None) -> dict[str, torch.Tensor]:
        """The verified weights of a PyTorch checkpoint, from the safetensors cache when present."""
        spec = WEIGHTS[spec] if isinstance(spec, str) else spec
        cache = self.cached_path(spec)
        if cache.is_file():
            with safe_open(str(cache), framework="pt") as fh:
                self._check_cache(spec, cache, fh.metadata() or {})
                return {k: fh.get_tensor(k) for k in fh.keys()}
        raw = self.verified_file(spec, progress)
        state = _unwrap(torch.load(raw, map_location="cpu", weights_only=True))
        state = {k: v.detach().contiguous().clone() for k, v in state.items()}  # no shared storage
        with atomic_output(cache) as tmp:
            save_file(state, str(tmp), metadata={"source_sha256": spec.sha256 or "unverified",
                                                 "source_url": spec.url})
        raw.unlink(missing_ok=True)
        log.info("cached %s as %s", spec.filename, cache.name)
        return state

    @staticmethod
    def _check_cache(spec: WeightFile, cache: Path, meta: dict[str, str]) -> None:
        if spec.sha256 and meta.get("source_sha256") != spec.sha256:
            raise WeightsError(f"{cache.name} was cached from another file than {spec.filename}; delete it")

    def fetch(self, spec: WeightFile | str, progress: ProgressCallback | None = None) -> Path:
        """Make the file ready as its first use would (download, verify, cache as safetensors) without loading
        an existing cache's tensors; returns the ready path. `python -m studio download --post` calls this."""
        spec = WEIGHTS[spec] if isinstance(spec, str) else spec
        if spec.kind == "onnx":
            return self.verified_file(spec, progress)
        cache = self.cached_path(spec)
        if cache.is_file():
            with safe_open(str(cache), framework="pt") as fh:  # reads the header only
                self._check_cache(spec, cache, fh.metadata() or {})
            return cache
        self.state_dict(spec, progress)
        return cache

    def verified_file(self, spec: WeightFile | str, progress: ProgressCallback | None = None) -> Path:
        """The original file, present or downloaded, after its sha256 matched the published value."""
        spec = WEIGHTS[spec] if isinstance(spec, str) else spec
        if spec.sha256 is None and not self.allow_unverified:
            raise WeightsError(
                f"no published sha256 is known for {spec.filename}; refusing to load an unverified file. "
                "Opt in explicitly (allow_unverified / --allow-unverified-weights) if you trust it.")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / spec.filename
        if not path.is_file():
            self._download(spec, path, progress)
        if spec.sha256 is None:
            log.warning("loading %s WITHOUT hash verification (user opted in)", spec.filename)
            return path
        digest = sha256_file(path)
        if digest != spec.sha256:
            path.unlink(missing_ok=True)
            raise WeightsError(f"{spec.filename}: sha256 {digest} does not match the published {spec.sha256}; "
                               "the file was deleted")
        return path

    def _download(self, spec: WeightFile, path: Path, progress: ProgressCallback | None) -> None:
        stage = f"download {spec.filename}"
        log.info("downloading %s (%s)", spec.url, f"{spec.size / 1e6:.1f} MB" if spec.size else "size unknown")
        try:
            with (atomic_output(path) as tmp, urllib.request.urlopen(spec.url, timeout=self.timeout) as resp,
                  open(tmp, "wb") as out):
                total = int(resp.headers.get("Content-Length") or spec.size or 0)
                if spec.size and total > spec.size:
                    raise WeightsError(f"{spec.filename}: server offers {total} bytes, expected {spec.size}")
                done = 0
                while block := resp.read(1 << 20):
                    done += len(block)
                    if spec.size and done > spec.size:
                        raise WeightsError(f"{spec.filename}: download larger than the expected {spec.size} bytes")
                    out.write(block)
                    report(progress, stage, done, total)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            # One sentence naming the file, the URL and where to put a copy (the CLI prints one per missing file).
            raise WeightsError(
                f"cannot download {spec.filename} from {spec.url} ({exc}); without network, download it elsewhere "
                f"and place it at {path} (it is checked against sha256 {spec.sha256})") from exc
