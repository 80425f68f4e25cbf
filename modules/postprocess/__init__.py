"""Post-processing toolbox (engine side, no UI): upscaling, face restoration, RIFE, ffmpeg operations.

Use `operations.OPERATIONS` for the list of operations with their option models, or import the
operation functions from their modules. Every operation writes its output atomically and reports
progress through a `Progress` callback.
"""

from .common import DEFAULT_CRF, PostProcessError, Progress, ProgressCallback

__all__ = ["DEFAULT_CRF", "PostProcessError", "Progress", "ProgressCallback"]
