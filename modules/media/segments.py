"""Closed-GOP H.264 segments joined by stream copy: each frame is encoded once, linear in length.

The engine encodes frames as soon as they are final (no later section can cross-fade them) into a
segment file of their own (an independent encode, so it starts with an IDR frame and references nothing
outside itself), and at the end joins the segments in video order by remuxing their packets.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from modules.media.video_io import VideoError, atomic_output, encode_frames


def encode_segment(path: Path, frames: np.ndarray | Sequence[np.ndarray], fps: float, crf: int) -> Path:
    """Encode frames (T x H x W x 3 uint8) into one closed segment at `path`, atomically."""
    with atomic_output(path) as tmp:
        encode_frames(tmp, frames, fps, crf=crf)
    return Path(path)


def join_segments(segments: Sequence[Path], out: Path, fps: float, comment: str | None = None) -> int:
    """Concatenate segments (same codec settings and size) by stream copy into `out`, atomically.

    Returns the number of packets (= frames) written.
    """
    if not segments:
        raise VideoError("no segments to join")
    frame_dur = Fraction(1) / Fraction(fps).limit_denominator(1001)
    count = 0
    with atomic_output(out) as tmp:
        with av.open(str(tmp), mode="w", options={"fflags": "+bitexact"}) as oc:
            if comment is not None:
                oc.metadata["comment"] = comment
            ostream = None
            offset = Fraction(0)  # start time of the current segment, in seconds
            for seg in segments:
                with av.open(str(seg)) as ic:
                    istream = ic.streams.video[0]
                    tb = istream.time_base
                    if ostream is None:
                        ostream = oc.add_stream_from_template(istream)
                        ostream.time_base = tb
                    shift = int(offset / tb)
                    n = 0
                    for pkt in ic.demux(istream):
                        if pkt.dts is None and pkt.pts is None:
                            continue  # the demuxer's final flush packet
                        pkt.pts = pkt.pts + shift if pkt.pts is not None else None
                        pkt.dts = pkt.dts + shift if pkt.dts is not None else None
                        pkt.stream = ostream
                        oc.mux(pkt)
                        n += 1
                    count += n
                    offset += n * frame_dur
    return count
