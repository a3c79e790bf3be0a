"""MediaPipe Pose (BlazePose, 33 landmarks) on the LiteRT interpreter, with MediaPipe's pre- and
post-processing carried over as numbers (data_specs/pose.md has the table).

One person a frame, as MediaPipe's pose solution does: a person detector (224 x 224 letterbox, 2254
SSD anchors, weighted non-maximum suppression) finds a person when none is tracked; the landmark
model then runs on a rotated square crop (256 x 256) around that person, and the next frame's crop
comes from the landmarks' own alignment points, so the detector runs again only when the person is
lost. Over a video, MediaPipe's smoothing runs as its pose_landmark_filtering graph sets it: a
one-euro filter on the landmarks (min cutoff 0.1, beta 40), a heavier one on the two alignment
points that place the next crop (0.01, 1), both scaled by the person's size, and a low-pass filter
(alpha 0.1) on visibilities; without it a still person's landmarks wander by several pixels.

Shapes: an RGB frame (H, W, 3) uint8 in; `PosePoints.xy` (33, 2) pixels of that frame,
`visibility` and `presence` (33,) in [0, 1].
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from .models import pose_model_bytes, quiet_stderr, video_modules

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
NUM_LANDMARKS = 39  # 33 body landmarks, 2 alignment points (33: hips' centre, 34: full-body circle), 4 more
MIN_DETECTION_SCORE = 0.5  # TensorsToDetectionsCalculator min_score_thresh
NMS_IOU = 0.3  # NonMaxSuppressionCalculator min_suppression_threshold, WEIGHTED
ROI_SCALE = 1.25  # RectTransformationCalculator scale_x/scale_y, square_long
MIN_PRESENCE = 0.5  # the landmark model's pose flag below which the person is lost
HEATMAP_KERNEL = 7  # RefineLandmarksFromHeatmapCalculator kernel_size
HEATMAP_MIN_CONFIDENCE = 0.5
# pose_landmark_filtering.pbtxt: (min_cutoff, beta, derivate_cutoff) of the one-euro filters
LANDMARK_FILTER = (0.1, 40.0, 1.0)
ALIGNMENT_FILTER = (0.01, 1.0, 1.0)
VISIBILITY_ALPHA = 0.1  # VisibilitySmoothingCalculator low_pass_filter


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def ssd_anchors() -> np.ndarray:
    """(2254, 2) anchor centres (x, y), normalised: SsdAnchorsCalculator with strides 8, 16, 32, 32, 32
    on 224 x 224 and fixed anchor size (2 anchors a cell at strides 8 and 16, 6 at stride 32)."""
    out = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        cells = DETECTOR_SIZE // stride
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        out.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass
class Detection:
    box: np.ndarray  # (4,) x0, y0, x1, y1 in pixels
    keypoints: np.ndarray  # (4, 2) pixels: hips' centre, full-body circle point, shoulders' centre, upper-body point
    score: float


@dataclass
class PosePoints:
    xy: np.ndarray  # (33, 2) pixels
    visibility: np.ndarray  # (33,) in [0, 1]
    presence: np.ndarray  # (33,) in [0, 1]
    score: float  # the pose flag: that a person is in the crop


@dataclass(frozen=True)
class Roi:
    """A rotated square in pixels: centre, side, rotation (radians, clockwise in image coordinates)."""

    cx: float
    cy: float
    size: float
    rotation: float

    @staticmethod
    def from_points(centre: np.ndarray, edge: np.ndarray) -> "Roi":
        """AlignmentPointsRectsCalculator (rotation to 90 degrees) + RectTransformation (square, x1.25)."""
        dx, dy = float(edge[0] - centre[0]), float(edge[1] - centre[1])
        rotation = math.pi / 2 - math.atan2(-dy, dx)
        rotation -= 2 * math.pi * math.floor((rotation + math.pi) / (2 * math.pi))
        return Roi(float(centre[0]), float(centre[1]), 2 * math.hypot(dx, dy) * ROI_SCALE, rotation)

    def crop_to_image(self) -> np.ndarray:
        """(2, 3) affine: a pixel (u, v) of the 256 x 256 crop -> the image pixel it shows."""
        a = self.size / LANDMARK_SIZE
        c, s = math.cos(self.rotation) * a, math.sin(self.rotation) * a
        h = LANDMARK_SIZE / 2
        return np.array([[c, -s, self.cx - h * c + h * s], [s, c, self.cy - h * s - h * c]], np.float32)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> list[Detection]:
    """MediaPipe's WEIGHTED non-maximum suppression: highest score first, each cluster (IoU > 0.3 with
    its best box) replaced by the score-weighted mean of its boxes and keypoints."""
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    free = np.ones(len(scores), bool)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    out = []
    for i in range(len(scores)):  # a handful of clusters a frame
        if not free[i]:
            continue
        inter = np.prod(
            np.clip(np.minimum(boxes[:, 2:], boxes[i, 2:]) - np.maximum(boxes[:, :2], boxes[i, :2]), 0, None), 1
        )
        member = free & (inter / np.maximum(area + area[i] - inter, 1e-12) > NMS_IOU)
        member[i] = True
        w = scores[member] / scores[member].sum()
        out.append(
            Detection(
                (boxes[member] * w[:, None]).sum(0), (keypoints[member] * w[:, None, None]).sum(0), float(scores[i])
            )
        )
        free &= ~member
    return out


def _alpha(cutoff: np.ndarray | float, seconds: float) -> np.ndarray:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / seconds)


class OneEuroFilter:
    """MediaPipe's one-euro filter (LandmarksSmoothingCalculator) over (L, 2) pixel coordinates, the
    speed measured in object sizes a second (value scale = 1 / the points' mean box side)."""

    def __init__(self, min_cutoff: float, beta: float, derivate_cutoff: float):
        self.min_cutoff, self.beta, self.derivate_cutoff = min_cutoff, beta, derivate_cutoff
        self.reset()

    def reset(self) -> None:
        self._raw: np.ndarray | None = None
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def __call__(self, points: np.ndarray, seconds: float) -> np.ndarray:
        points = points.astype(np.float64)
        scale = float((np.ptp(points[:, 0]) + np.ptp(points[:, 1])) / 2)
        if scale < 1e-6:  # MediaPipe's min_allowed_object_scale: the filter is bypassed
            return points.astype(np.float32)
        if self._raw is None:
            speed = np.zeros_like(points)
            value = points
        else:
            speed = (points - self._raw) / scale / seconds
            a = _alpha(self.derivate_cutoff, seconds)
            speed = a * speed + (1 - a) * self._speed
            a = _alpha(self.min_cutoff + self.beta * np.abs(speed), seconds)
            value = a * points + (1 - a) * self._value
        self._raw, self._value, self._speed = points, value, speed
        return value.astype(np.float32)


class BlazePose:
    """One BlazePose estimator: `process(frame)` per frame of one video, in order; `reset()` between videos."""

    def __init__(self, threads: int = 1, smooth: bool = True):
        self._cv2, interpreter = video_modules()
        models = pose_model_bytes()
        with quiet_stderr():
            self._det = interpreter(model_content=models["detector"], num_threads=threads)
            self._lm = interpreter(model_content=models["landmarks"], num_threads=threads)
            self._det.allocate_tensors()
            self._lm.allocate_tensors()
        self._det_in = self._det.get_input_details()[0]["index"]
        out = {d["name"]: d["index"] for d in self._det.get_output_details()}
        self._det_boxes, self._det_scores = out["Identity"], out["Identity_1"]
        self._lm_in = self._lm.get_input_details()[0]["index"]
        out = {d["name"]: d["index"] for d in self._lm.get_output_details()}
        # landmarks (1, 195), pose flag (1, 1), segmentation (unused), heatmap (1, 64, 64, 39), world (unused)
        self._lm_points, self._lm_flag, self._lm_heatmap = out["Identity"], out["Identity_1"], out["Identity_3"]
        self._anchors = ssd_anchors()
        self._roi: Roi | None = None
        self.smooth = smooth
        self._filters = (OneEuroFilter(*LANDMARK_FILTER), OneEuroFilter(*ALIGNMENT_FILTER))
        self._visibility: np.ndarray | None = None
        self.detector_runs = 0  # frames on which the detector ran (the rest were tracked)
        self.seconds = {"detector": 0.0, "landmarks": 0.0}  # time in each model, pre/post-processing included

    def reset(self) -> None:
        """Forget the tracked person and the filters' state (a new video, or the person lost)."""
        self._roi = None
        self._visibility = None
        for f in self._filters:
            f.reset()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """People in `rgb`, best first."""
        t0 = time.perf_counter()
        h, w = rgb.shape[:2]
        scale = DETECTOR_SIZE / max(h, w)
        pad_x, pad_y = (DETECTOR_SIZE - w * scale) / 2, (DETECTOR_SIZE - h * scale) / 2
        # letterbox with a corner-aligned affine, as MediaPipe's ImageToTensorCalculator (zero border)
        fit = np.array([[scale, 0, pad_x], [0, scale, pad_y]], np.float32)
        cv2 = self._cv2
        img = cv2.warpAffine(rgb, fit, (DETECTOR_SIZE, DETECTOR_SIZE), flags=cv2.INTER_LINEAR)
        self._det.set_tensor(self._det_in, (img.astype(np.float32) * np.float32(1 / 127.5) - 1)[None])
        self._det.invoke()
        self.detector_runs += 1
        scores = _sigmoid(self._det.get_tensor(self._det_scores)[0, :, 0])
        keep = scores >= MIN_DETECTION_SCORE
        if not keep.any():
            self.seconds["detector"] += time.perf_counter() - t0
            return []
        raw, anchors = self._det.get_tensor(self._det_boxes)[0][keep], self._anchors[keep]
        centre = raw[:, :2] / DETECTOR_SIZE + anchors
        half = raw[:, 2:4] / DETECTOR_SIZE / 2
        boxes = np.concatenate([centre - half, centre + half], 1)
        points = raw[:, 4:12].reshape(-1, 4, 2) / DETECTOR_SIZE + anchors[:, None, :]
        # from the letterboxed square back to pixels of the frame
        to_px = lambda p: (p * DETECTOR_SIZE - [pad_x, pad_y]) / scale  # noqa: E731
        found = weighted_nms(to_px(boxes.reshape(-1, 2, 2)).reshape(-1, 4), to_px(points), scores[keep])
        self.seconds["detector"] += time.perf_counter() - t0
        return found

    def landmarks(self, rgb: np.ndarray, roi: Roi) -> PosePoints:
        """The 33 landmarks of the person in `roi` (and the two alignment points, kept for tracking)."""
        t0 = time.perf_counter()
        cv2 = self._cv2
        affine = roi.crop_to_image()
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # the affine maps crop pixels to image pixels
        crop = cv2.warpAffine(rgb, affine, (LANDMARK_SIZE, LANDMARK_SIZE), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        self._lm.set_tensor(self._lm_in, (crop.astype(np.float32) * np.float32(1 / 255))[None])
        self._lm.invoke()
        raw = self._lm.get_tensor(self._lm_points)[0].reshape(NUM_LANDMARKS, 5)
        flag = float(self._lm.get_tensor(self._lm_flag)[0, 0])
        xy = refine_from_heatmap(raw[:, :2], self._lm.get_tensor(self._lm_heatmap)[0])
        image_xy = xy @ affine[:, :2].T + affine[:, 2]
        self._alignment = image_xy[33:35]
        self.seconds["landmarks"] += time.perf_counter() - t0
        return PosePoints(image_xy[:33], _sigmoid(raw[:33, 3]), _sigmoid(raw[:33, 4]), flag)

    def process(self, rgb: np.ndarray, seconds: float = 1 / 30) -> PosePoints | None:
        """The tracked person in this frame (the best detection when none is tracked), or None.
        `seconds`: since the previous frame (the filters' time step)."""
        if self._roi is None:
            found = self.detect(rgb)
            if not found:
                return None
            self._roi = Roi.from_points(found[0].keypoints[0], found[0].keypoints[1])
        pose = self.landmarks(rgb, self._roi)
        if pose.score < MIN_PRESENCE:
            self.reset()
            return None
        alignment = self._alignment
        if self.smooth:
            pose.xy = self._filters[0](pose.xy, seconds)
            alignment = self._filters[1](alignment, seconds)
            if self._visibility is not None:
                pose.visibility = VISIBILITY_ALPHA * pose.visibility + (1 - VISIBILITY_ALPHA) * self._visibility
            self._visibility = pose.visibility
        self._roi = Roi.from_points(alignment[0], alignment[1])
        return pose


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """RefineLandmarksFromHeatmapCalculator: each landmark (crop pixels) moved to the confidence-
    weighted mean of the 7 x 7 heatmap cells around it, where the best of them is at least 0.5.

    xy (L, 2) pixels of the 256 crop; heatmap (h, w, L) logits. Returns (L, 2).
    """
    h, w, n = heatmap.shape
    col = np.trunc(xy[:, 0] / LANDMARK_SIZE * w).astype(np.int64)  # C++ static_cast<int>
    row = np.trunc(xy[:, 1] / LANDMARK_SIZE * h).astype(np.int64)
    offsets = np.arange(HEATMAP_KERNEL) - HEATMAP_KERNEL // 2
    rows, cols = row[:, None] + offsets, col[:, None] + offsets  # (L, 7)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # (L, 7, 7)
    conf = _sigmoid(heatmap[np.clip(rows, 0, h - 1)[:, :, None], np.clip(cols, 0, w - 1)[:, None, :],
                            np.arange(n)[:, None, None]]) * valid  # fmt: skip
    total = conf.sum((1, 2))
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    refine = inside & (conf.max((1, 2)) >= HEATMAP_MIN_CONFIDENCE) & (total > 0)
    safe = np.where(total > 0, total, 1)
    mean_col = (conf * cols[:, None, :]).sum((1, 2)) / safe
    mean_row = (conf * rows[:, :, None]).sum((1, 2)) / safe
    refined = np.stack([mean_col / w * LANDMARK_SIZE, mean_row / h * LANDMARK_SIZE], 1)
    return np.where(refine[:, None], refined, xy).astype(np.float32)
