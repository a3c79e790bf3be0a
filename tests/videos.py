"""Short videos of a real person for the pose tests, made from a photograph a registry package ships
(matplotlib's sample `grace_hopper.jpg`, 512 x 600): still, shifted, scaled and mirrored frames,
written with OpenCV. Nothing here is committed as a video."""

from pathlib import Path

import numpy as np


def photo() -> np.ndarray:
    """(600, 512, 3) uint8 RGB."""
    import matplotlib.cbook
    import matplotlib.image

    return np.asarray(matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))


def place(img: np.ndarray, size: tuple[int, int], dx: int = 0, scale: float = 1.0, mirror: bool = False) -> np.ndarray:
    """`img` scaled, mirrored, centred on a grey (H, W) canvas and shifted right by `dx` pixels."""
    import cv2

    h, w = size
    if mirror:
        img = img[:, ::-1]
    s = scale * min(h / img.shape[0], w / img.shape[1]) * 0.9
    small = cv2.resize(
        np.ascontiguousarray(img), (int(img.shape[1] * s), int(img.shape[0] * s)), interpolation=cv2.INTER_AREA
    )
    canvas = np.full((h, w, 3), 90, np.uint8)
    y0, x0 = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2 + dx
    canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return canvas


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    """RGB frames -> an MPEG-4 Part 2 .mp4 (or .avi: MJPG) OpenCV can read back."""
    import cv2

    h, w = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def clip(path: Path, frames: int = 12, size: tuple[int, int] = (480, 640), step: int = 0, scale: float = 1.0,
         mirror: bool = False, blank: tuple[int, ...] = ()) -> Path:  # fmt: skip
    """A clip of the photo moving right by `step` pixels a frame; frames in `blank` show nobody."""
    img = photo()
    out = []
    for k in range(frames):
        out.append(np.full((*size, 3), 90, np.uint8) if k in blank else place(img, size, k * step, scale, mirror))
    return write_video(path, out)
