"""Same job, same bytes: every generation type, repeated in one process between other encodes, in parallel
processes, rerun from its sidecar, and cancelled at every section boundary then resumed.

The MP4, the sidecar JSON and the latents file are compared byte for byte; nothing is compared with a
tolerance. See docs/determinism.md for what is and is not reproducible and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from determinism_jobs import jobs, make_inputs, outputs, params, run_cli

from modules.framepack.engine import Engine
from modules.framepack.outputs import OutputOptions
from modules.cancel import CancelledError, CancelToken
from modules.framepack.events import DoneEvent, SectionEvent, StepEvent
from modules.framepack.params import GenerationParams
from modules.media.video_io import write_video
from tests.hang import HANG_S

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REPEATS, PROCESSES = 5, 3


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return make_inputs(tmp_path_factory.mktemp("det_inputs"))


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """Each type run REPEATS times, round-robin, with unrelated encodes in between; all runs must agree."""
    root = tmp_path_factory.mktemp("det_repeat")
    rng = np.random.default_rng(3)
    runs: dict[str, list[dict[str, bytes]]] = {name: [] for name in jobs(inputs)}
    for rep in range(REPEATS):
        for i, name in enumerate(runs):
            # Other encoding work of another size between jobs, as a busy studio does.
            noise = rng.integers(0, 256, (9 + i, 48 + 16 * (rep % 3), 80, 3), dtype=np.uint8)
            write_video(root / "other" / f"{rep}_{i}.mp4", noise, fps=24, crf=20 + rep)
            video = run_cli(inputs, name, root / "data", root / f"{name}_{rep}")
            runs[name].append(outputs(video))
    for name, files in runs.items():
        assert set(files[0]) >= {"mp4", "json"}, name
        for rep, other in enumerate(files[1:], start=1):
            for kind, data in files[0].items():
                assert other[kind] == data, f"{name}: run {rep} wrote a different {kind} file"
    return {name: files[0] for name, files in runs.items()}


def _digests(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


def test_every_type_same_bytes_in_one_process(reference):
    assert set(reference) == {"original", "original_endframe", "f1", "f1_endframe", "video", "video_endframe",
                              "video_f1", "grid"}
    assert all("latents" in reference[n] for n in reference if n != "grid")  # --save-latents wrote them
    # The types really differ (a test that compared empty or equal-for-all files would prove nothing).
    assert len({files["mp4"] for files in reference.values()}) == len(reference)


def test_every_type_same_bytes_in_parallel_processes(reference, inputs, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "engine" / "determinism_jobs.py"), str(inputs),
                               str(tmp_path / f"data{i}"), str(tmp_path / f"out{i}")],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(PROCESSES)]
    expected = {name: _digests(files) for name, files in reference.items()}
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=HANG_S)  # only a hang stops the wait
            assert proc.returncode == 0, stderr[-3000:]
            assert json.loads(stdout.strip().splitlines()[-1]) == expected
    finally:
        for proc in procs:
            if proc.poll() is None:  # left running by a failure above
                proc.kill()
                proc.communicate()


def test_rerun_from_sidecar_same_bytes(reference, inputs, tmp_path):
    for name in ("original", "f1_endframe", "video_f1", "grid"):
        first = run_cli(inputs, name, tmp_path / "data", tmp_path / name)
        sidecar = first.with_suffix(".json")
        again = run_cli(inputs, name, tmp_path / "data", tmp_path / f"{name}_again", "--params", str(sidecar))
        assert outputs(again) == outputs(first) == reference[name], name


def _run_engine(manager, p: GenerationParams, out: OutputOptions, cancel_after: int | None = None):
    """Run to the end, or until the SectionEvent of section `cancel_after` (then cancel).

    Returns (result or None when cancelled, the sections that were sampled).
    """
    cancel = CancelToken()
    sampled: set[int] = set()
    try:
        for ev in Engine(manager).generate(p, out, cancel):
            if isinstance(ev, StepEvent):
                sampled.add(ev.section)
            if isinstance(ev, SectionEvent) and ev.section == cancel_after:
                cancel.cancel()
            if isinstance(ev, DoneEvent):
                return ev.result, sampled
    except CancelledError:
        return None, sampled
    raise AssertionError("the engine ended without a result")


@pytest.mark.parametrize("name", ["original", "original_endframe", "f1", "f1_endframe", "video", "video_endframe",
                                  "video_f1", "grid"])
def test_cancel_at_every_section_boundary_then_resume_same_bytes(name, tiny_manager, inputs, tmp_path):
    p = GenerationParams(**params(inputs, name))

    def options(tag: str) -> OutputOptions:
        return OutputOptions(output_dir=tmp_path / tag / "out", work_dir=tmp_path / tag / "work", crf=16,
                             save_metadata=True, cleanup_videos=True, save_latents=True, name="job")

    whole, sections = _run_engine(tiny_manager, p, options("whole"))
    assert len(sections) >= 2
    for boundary in sorted(sections):
        out = options(f"cut{boundary}")
        cut, before = _run_engine(tiny_manager, p, out, cancel_after=boundary)
        assert cut is None and max(before) == boundary, f"not cancelled at {boundary}"
        assert not out.output_dir.exists() or not any(out.output_dir.glob("*.mp4"))
        resumed, after = _run_engine(tiny_manager, p, out)
        assert after == {s for s in sections if s > boundary}  # resumed, not started over
        assert outputs(resumed.video) == outputs(whole.video), f"{name}: resumed after section {boundary}"
