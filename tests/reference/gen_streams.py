"""Slow, literal transcriptions of lshiwjx/2s-AGCN `data_gen/gen_bone_data.py` and
`data_gen/gen_motion_data.py`: the bone and motion arrays the reference trains its NTU bone,
joint-motion and bone-motion streams on, made from its padded (N, C, 300, V, M) arrays.

The reference runs over whole `.npy` files into float32 memory maps (zero-filled when created);
here the same steps run on an array in memory, into a zero-filled float32 array:
- bone: the output starts as a copy of the joints; then, for each (joint, parent) pair of the
  table below (1-based for NTU), the joint's entry becomes joint minus parent, over every
  sample, channel, frame and person. Every joint is listed once; the centre joint (21) is its
  own parent, so its bone is zero.
- motion: for every frame t but the last, frame t becomes frame t + 1 minus frame t, over every
  sample at once; the last frame is set to zero. It is run on the joint array and on the bone
  array (bone-motion), so the padding is differenced too.
"""

import numpy as np

# gen_bone_data.py's NTU table (the same for xsub and xview): (joint, parent), 1-based
NTU_PAIRS = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11),
    (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (21, 21), (23, 8),
    (24, 25), (25, 12),
)  # fmt: skip


def ref_gen_bone(data: np.ndarray, pairs=NTU_PAIRS, one_based: bool = True) -> np.ndarray:
    """gen_bone_data on joints (N, C, T, V, M): (N, 3, T, V, M) float32."""
    N, C, T, V, M = data.shape
    out = np.zeros((N, 3, T, V, M), dtype=np.float32)
    out[:, :C, :, :, :] = data
    for v1, v2 in pairs:
        if one_based:
            v1 -= 1
            v2 -= 1
        out[:, :, :, v1, :] = data[:, :, :, v1, :] - data[:, :, :, v2, :]
    return out


def ref_gen_motion(data: np.ndarray) -> np.ndarray:
    """gen_motion_data on joints or bones (N, C, T, V, M): (N, 3, T, V, M) float32."""
    N, C, T, V, M = data.shape
    out = np.zeros((N, 3, T, V, M), dtype=np.float32)
    for t in range(T - 1):
        out[:, :, t, :, :] = data[:, :, t + 1, :, :] - data[:, :, t, :, :]
    out[:, :, T - 1, :, :] = 0
    return out
