"""One video's people as the arrays of an MMAction2/pyskl 2D annotation: `keypoint` (M, T, V, 2)
in pixels of the original frame, `keypoint_score` (M, T, V); a frame where nobody is found keeps
zero keypoints and zero scores, so frame k of the arrays is frame k of the video.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..skeleton.adapters import source_index
from ..skeleton.layouts import Layout
from .blazepose import BlazePose
from .video import Decoded, VideoInfo, video_frames

FrameTick = Callable[[int], None]  # called with the number of frames just done


@dataclass
class VideoPoses:
    keypoint: np.ndarray  # (M, T, V, 2) float32 pixels
    keypoint_score: np.ndarray  # (M, T, V) float32
    img_shape: tuple[int, int]  # (height, width)
    fps: float  # the container's (0 if unknown)
    notes: list[str] = field(default_factory=list)  # what the file turned out to hold, one line each
    seconds: dict[str, float] = field(default_factory=dict)  # decoding, detector, landmarks

    @property
    def frames(self) -> int:
        return int(self.keypoint.shape[1])

    @property
    def frames_with_people(self) -> int:
        return int((self.keypoint_score.max(axis=(0, 2), initial=0) > 0).sum())


def blazepose_frames(info: VideoInfo, estimator: BlazePose, layout: Layout, decoded: Decoded
                     ) -> Iterator[tuple[np.ndarray, np.ndarray] | None]:  # fmt: skip
    """Frame by frame as the video decodes: the person's (V, 2) keypoints and (V,) scores in
    `layout`'s joints (COCO-17 by name), or None where nobody is found. What `agcn watch VIDEO`
    reads, one frame at a time, and `blazepose_video` gathers."""
    index = source_index("blazepose33", layout)
    estimator.reset()
    step = 1 / info.fps if info.fps > 0 else 1 / 30
    for frame in video_frames(info, decoded):
        pose = estimator.process(frame, step)
        yield None if pose is None else (pose.xy[index], pose.visibility[index])


def blazepose_video(info: VideoInfo, estimator: BlazePose, layout: Layout, tick: FrameTick | None = None) -> VideoPoses:
    """BlazePose over every frame of a video: one person (M = 1), `layout`'s joints (COCO-17 by name),
    the landmark's visibility as its score."""
    v = len(source_index("blazepose33", layout))
    decoded = Decoded()
    xy, score = [], []
    empty_xy, empty_score = np.zeros((v, 2), np.float32), np.zeros(v, np.float32)
    before = dict(estimator.seconds)
    for k, found in enumerate(blazepose_frames(info, estimator, layout, decoded)):
        xy.append(empty_xy if found is None else found[0])
        score.append(empty_score if found is None else found[1])
        if tick is not None and k % 10 == 9:
            tick(10)
    if tick is not None and len(xy) % 10:
        tick(len(xy) % 10)
    notes = decoded.problems(info)
    if not xy:
        notes.append("no frame could be decoded")
    keypoint = np.stack(xy)[None].astype(np.float32) if xy else np.zeros((1, 0, v, 2), np.float32)
    keypoint_score = np.stack(score)[None].astype(np.float32) if score else np.zeros((1, 0, v), np.float32)
    seconds = {"decoding": decoded.seconds} | {k: val - before[k] for k, val in estimator.seconds.items()}
    return VideoPoses(keypoint, keypoint_score, (info.height, info.width), info.fps, notes, seconds)
