"""The one captioner of a studio process: caption, describe video and enhance for the UI, the API and the CLI.

Memory policy (docs/captioning.md). The model loads on the first request and stays loaded between requests.
On a machine with GPU workers it runs on the GPU of a worker that runs no job, holding that worker's
`device_lease` for the request, and the worker frees it (unloads the captioner) before its next job, so the
helper never competes with a generation for VRAM. While every GPU runs a job, a request runs on the CPU instead
of waiting for a job that may take an hour: slower (tens of seconds for the 2B model), but it neither fails nor
delays anything. Its memory shows in the header (`status_text`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from modules.captioning import inputs as checks
from modules.models.registry import CAPTIONER_MODELS, ModelSet
from studio.jobs.worker import free_memory, is_out_of_memory
from studio.settings import Settings

if TYPE_CHECKING:
    from modules.captioning.helpers import VideoDescription
    from modules.captioning.vlm import TokenListener, VisionLanguageModel
    from studio.jobs.pool import WorkerPool
    from studio.jobs.worker import Worker

log = logging.getLogger(__name__)

T = TypeVar("T")
GPU_HEADROOM = 1.25  # free VRAM needed, as a multiple of the weights (activations, the video's tokens)


class CaptionerError(RuntimeError):
    """The captioner could not answer (weights missing, out of memory, no text): one sentence for the user."""


@dataclass(frozen=True)
class Placement:
    device: str
    worker: Worker | None = None  # whose device_lease this request holds


class CaptionService:
    def __init__(self, settings_provider: Callable[[], Settings],
                 gpu_workers: Callable[[], dict[str, Worker]] = dict) -> None:
        """gpu_workers: the local workers that own a device the captioner may borrow, by device (from the
        pool; tests pass a CPU worker under "cpu" to follow the same hand-over)."""
        self.settings_provider = settings_provider
        self.gpu_workers = gpu_workers
        self._request = threading.Lock()  # one request at a time: they share the one model
        self._state = threading.Lock()  # guards _vlm and _activity against the header's reads
        self._vlm: VisionLanguageModel | None = None
        self._activity = ""

    @classmethod
    def for_pool(cls, settings_provider: Callable[[], Settings], pool: WorkerPool) -> CaptionService:
        service = cls(settings_provider, pool.gpu_workers)
        pool.on_job_start(service.leave)
        return service

    # ---- the three helpers ---------------------------------------------------------------------------------
    def caption(self, image: Path, on_token: TokenListener | None = None) -> str:
        """A prompt describing the image and a plausible motion. InputError (field "image") for a bad file."""
        from modules.captioning.helpers import caption_image

        picture = checks.load_caption_image(Path(image), "image")
        return self._run(lambda vlm: caption_image(vlm, picture, on_token), "captioning the image")

    def describe(self, video: Path, seconds: float = 5.0, timestamped: bool = False,
                 on_token: TokenListener | None = None) -> VideoDescription:
        """What happens in the video and a prompt for `seconds` of extension. InputError (field "video")."""
        from modules.captioning.helpers import describe_video

        checks.check_extension_seconds(seconds)
        sampled = checks.sample_video(Path(video), field="video")
        return self._run(lambda vlm: describe_video(vlm, sampled, seconds, timestamped, on_token),
                         "describing the video")

    def enhance(self, prompt: str, on_token: TokenListener | None = None) -> str:
        """The prompt rewritten as a motion prompt, its timestamps kept. InputError (field "prompt")."""
        from modules.captioning.helpers import enhance_prompt

        segments = checks.check_enhance_prompt(prompt, "prompt")
        return self._run(lambda vlm: enhance_prompt(vlm, segments, on_token), "enhancing the prompt")

    # ---- memory --------------------------------------------------------------------------------------------
    def leave(self, worker: Worker) -> None:
        """A worker is about to start a job (it holds its device_lease): unload the captioner from its GPU.

        No request can be using it there (a request on that GPU holds the lease), so this never waits for one."""
        device = next((d for d, w in self.gpu_workers().items() if w is worker), None)
        if device is not None and self._on(device):
            log.info("captioner: unloading from %s for a job on worker %s", device, worker.worker_name)
            self._drop()

    def unload(self) -> bool:
        """Frees the model (the Unload button), after the request that may be running. False when none was
        loaded."""
        with self._request:
            return self._drop()

    def status_text(self) -> str:
        """For the header: which model is loaded where, and its weights' memory; or what it is doing."""
        with self._state:
            vlm, activity = self._vlm, self._activity
        if vlm is None:
            return f"Captioner: {activity}" if activity else "Captioner: not loaded"
        name = vlm.component.repo_id.split("/")[-1]
        doing = f" · {activity}" if activity else ""
        size = vlm.memory_bytes
        shown = f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB"
        return f"Captioner: {name} on {vlm.device} · {shown}{doing}"

    # ---- inside ---------------------------------------------------------------------------------------------
    def _run(self, ask: Callable[[VisionLanguageModel], T], activity: str) -> T:
        from modules.captioning.helpers import EmptyAnswerError
        from modules.models.loader import ModelNotAvailableError

        with self._request:
            placement = self._place()
            try:
                self._set_activity(activity)
                try:
                    return ask(self._model_on(placement.device))
                except Exception as exc:
                    if placement.device == "cpu" or not is_out_of_memory(exc):
                        raise
                    log.warning("captioner: out of memory on %s; answering on the CPU", placement.device)
                    self._drop()
                    return ask(self._model_on("cpu"))
            except ModelNotAvailableError as exc:
                raise CaptionerError(str(exc)) from None
            except EmptyAnswerError as exc:
                raise CaptionerError(str(exc)) from None
            finally:
                self._set_activity("")
                if placement.worker is not None:
                    placement.worker.device_lease.release()

    def _place(self) -> Placement:
        """A GPU whose worker runs no job (its lease taken) and has room, else the CPU."""
        need = CAPTIONER_MODELS[self.settings_provider().captioner_model].approx_size_gb * 2**30 * GPU_HEADROOM
        for device, worker in self.gpu_workers().items():
            if not worker.device_lease.acquire(blocking=False):
                continue  # a job runs there
            if device == "cpu" or self._on(device) or _free_bytes(device) >= need:
                return Placement(device, worker)
            worker.device_lease.release()
        return Placement("cpu")

    def _on(self, device: str) -> bool:
        with self._state:
            return self._vlm is not None and str(self._vlm.device) == device

    def _model_on(self, device: str) -> VisionLanguageModel:
        """The settings' model on `device`, loading it (or moving from another device) when needed."""
        import torch

        from modules.captioning.vlm import VisionLanguageModel

        s = self.settings_provider()
        component = CAPTIONER_MODELS[s.captioner_model]
        with self._state:
            vlm = self._vlm
        if vlm is not None and vlm.component == component and str(vlm.device) == device:
            return vlm
        self._drop()
        # bf16 halves the memory; the tiny set stays in float32 on the CPU (reproducible captions in the tests).
        dtype = torch.float32 if device == "cpu" and s.models == ModelSet.TINY else torch.bfloat16
        with self._state:
            doing, self._activity = self._activity, f"loading {component.repo_id.split('/')[-1]}"
        vlm = VisionLanguageModel.load(component, s.models, device, dtype, Path(s.hf_home) if s.hf_home else None)
        with self._state:
            self._vlm, self._activity = vlm, doing
        return vlm

    def _drop(self) -> bool:
        with self._state:
            vlm, self._vlm = self._vlm, None
        if vlm is None:
            return False
        vlm.unload()
        del vlm
        free_memory()
        return True

    def _set_activity(self, text: str) -> None:
        with self._state:
            self._activity = text


def _free_bytes(device: str) -> int:
    import torch

    try:
        free, _ = torch.cuda.mem_get_info(torch.device(device))
    except (RuntimeError, AssertionError, ValueError):
        return 0
    return int(free)
