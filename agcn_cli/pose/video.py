"""Video files in, RGB frames out, with OpenCV (the `video` extra): what a file holds, checked once.

`probe_video` opens a file and reads its first frame, so that a file that is not a video, an empty
or unreadable one, or an enormous frame size is one line before any work. `video_frames` yields
the frames in order (decoded on a second thread, so decoding overlaps the pose model) and records
what the file turned out to hold: the frames decoded, the time stamps (a variable frame rate shows
there), whether decoding stopped before the frames the container announced.
"""

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from .models import opencv

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts")
MAX_PIXELS = 7680 * 4320  # 8K UHD: a larger frame is refused (one such RGB frame is 100 MB)
MAX_VIDEO_FRAMES = 100_000  # as an annotation file holds (sources/pkl.PKL_MAX_FRAMES): 55 minutes at 30 fps
VARIABLE_RATE = 0.25  # frame intervals spread wider than this share of their median: a variable frame rate
PREFETCH = 8  # decoded frames waiting for the pose model


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float  # as the container says (0 if it does not)
    declared_frames: int  # as the container says (an estimate for some containers; 0 if unknown)


@dataclass
class Decoded:
    """What decoding found, filled while `video_frames` runs."""

    frames: int = 0
    seconds: float = 0.0  # spent decoding (and converting to RGB), on the decoding thread
    times_ms: list[float] = field(default_factory=list)
    error: str | None = None  # why decoding stopped early, if it did

    def problems(self, info: VideoInfo) -> list[str]:
        """Notes on the file: truncated, variable frame rate (empty for a well-formed file)."""
        notes = []
        if self.error:
            notes.append(f"decoding stopped at frame {self.frames}: {self.error}")
        elif info.declared_frames > 0 and self.frames < 0.9 * info.declared_frames:
            notes.append(f"truncated: decoded {self.frames} of the {info.declared_frames} frames it announces")
        steps = np.diff(np.asarray(self.times_ms, dtype=np.float64))
        steps = steps[steps > 0]
        if len(steps) >= 2:
            median = float(np.median(steps))
            if median > 0 and (steps.max() - steps.min()) > VARIABLE_RATE * median:
                notes.append(
                    f"variable frame rate ({steps.min():.1f}-{steps.max():.1f} ms between frames): frame k of the "
                    "annotation is the k-th decoded frame, not time k/fps"
                )
        return notes


def _capture(path: Path):
    cv2 = opencv()
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise AgcnError(f"{path}: not a video OpenCV can open (unknown format, truncated header, or not a video)")
    return cv2, cap


def probe_video(path: Path) -> VideoInfo:
    """What `path` holds, checked: it opens, its first frame decodes, the frame is not enormous."""
    if not path.is_file():
        raise AgcnError(f"{path}: no such file")
    cv2, cap = _capture(path)
    try:
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > MAX_PIXELS:
            raise AgcnError(f"{path}: {w}x{h} frames, more than 8K ({MAX_PIXELS:,} pixels); scale it down first")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise AgcnError(f"{path}: no frame could be decoded (a zero-frame or corrupt video)")
        h, w = frame.shape[:2]
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if declared > MAX_VIDEO_FRAMES:
            raise AgcnError(f"{path}: {declared:,} frames, more than {MAX_VIDEO_FRAMES:,}; cut it into parts first")
        return VideoInfo(path, w, h, fps if np.isfinite(fps) and fps > 0 else 0.0, max(declared, 0))
    finally:
        cap.release()


def video_frames(info: VideoInfo, decoded: Decoded) -> Iterator[np.ndarray]:
    """The frames of `info.path` in order, (H, W, 3) uint8 RGB; `decoded` records what was found."""
    cv2, cap = _capture(info.path)
    frames: queue.Queue = queue.Queue(PREFETCH)
    stop = threading.Event()

    def decode() -> None:  # OpenCV releases the GIL while decoding
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                if frame.shape[:2] != (info.height, info.width):
                    decoded.error = (
                        f"frame size changed from {info.width}x{info.height} to {frame.shape[1]}x{frame.shape[0]}"
                    )
                    break
                if decoded.frames >= MAX_VIDEO_FRAMES:
                    decoded.error = f"more than {MAX_VIDEO_FRAMES:,} frames"
                    break
                decoded.times_ms.append(float(cap.get(cv2.CAP_PROP_POS_MSEC)))
                decoded.frames += 1
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                decoded.seconds += time.perf_counter() - t0
                frames.put(rgb)
        except cv2.error as e:
            decoded.error = str(e).strip().splitlines()[-1]
        finally:
            frames.put(None)

    worker = threading.Thread(target=decode, daemon=True)
    worker.start()
    try:
        while (frame := frames.get()) is not None:
            yield frame
    finally:
        stop.set()
        while worker.is_alive():  # unblock a decoder waiting on a full queue
            try:
                frames.get_nowait()
            except queue.Empty:
                worker.join(0.01)
        cap.release()
