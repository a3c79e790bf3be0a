"""The people of one frame, as every estimator and reader in `pose/` hands them on."""

from dataclasses import dataclass

import numpy as np


@dataclass
class FramePeople:
    """The people found in one frame, joints in the target layout's order (COCO-17 by default)."""

    keypoints: np.ndarray  # (P, V, 2) float32, pixels of the original frame
    scores: np.ndarray  # (P, V) float32 in [0, 1]; 0 for a joint not found
    ids: np.ndarray | None = None  # (P,) int64 person ids given by the input, None where it gives none

    @property
    def count(self) -> int:
        return int(self.keypoints.shape[0])

    @staticmethod
    def empty(num_joints: int) -> "FramePeople":
        return FramePeople(np.zeros((0, num_joints, 2), np.float32), np.zeros((0, num_joints), np.float32))
