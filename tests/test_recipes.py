"""Both recipes against slow transcriptions of their references, plus normalisation invariants."""

import numpy as np
import pytest

from agcn_cli.skeleton.layouts import get_layout
from agcn_cli.skeleton.normalize import pre_normalize_2sagcn, pre_normalize_3d
from agcn_cli.sources.ntu import SkeletonError, parse_skeleton
from agcn_cli.sources.recipes import make_sample
from tests.helpers import random_body, write_skeleton
from tests.reference.preprocess import ref_2sagcn_sample, ref_mmaction2_sample

NORM = get_layout("ntu25").normalize


def kinect_like_file(path, rng: np.random.Generator, two_person: bool):
    """Late entry, early exit, empty frames, 1-frame and multi-frame ghosts, slot swaps."""
    T = int(rng.integers(20, 60))
    a = random_body(rng, T)
    b = random_body(rng, T, (0.8, 0.0, 3.2))
    ghost = rng.normal(size=(T, 25, 3)) * [1.0, 0.05, 1.0] + [0.0, 0.0, 3.0]  # wide and flat
    late, early = int(rng.integers(0, 10)), T - int(rng.integers(0, 10))
    g0, g1 = int(rng.integers(0, T - 8)), int(rng.integers(1, 15))
    frames = []
    for t in range(T):
        if rng.random() < 0.05:
            frames.append([])
            continue
        bodies = []
        if late <= t < early:
            bodies.append((72057594037931101, a[t]))
        if two_person:
            bodies.append((72057594037931102, b[t]))
        if g0 <= t < g0 + g1:
            bodies.append((72057594037931103, ghost[t]))
        if rng.random() < 0.1:
            bodies.append((72057594037940000 + t, ghost[t] * 0.5))  # one-frame ghost
        if rng.random() < 0.2:
            bodies = bodies[::-1]
        frames.append(bodies)
    return write_skeleton(path, frames)


@pytest.mark.parametrize("recipe", ["2s-agcn", "mmaction2"])
def test_recipe_matches_reference(tmp_path, recipe):
    rng = np.random.default_rng(7 if recipe == "2s-agcn" else 8)
    for trial in range(8):
        path = kinect_like_file(tmp_path / f"S001C001P001R001A{trial + 1:03d}.skeleton", rng, trial % 2 == 0)
        ours, persons = make_sample(parse_skeleton(path), recipe, NORM)
        assert ours.dtype == np.float32 and ours.shape[0] == 2 and ours.shape[2:] == (25, 3)
        if recipe == "2s-agcn":
            # the reference pads to 300 frames: compare its first T frames, (C, T, V, M) -> (M, T, V, C)
            ref = ref_2sagcn_sample(path)[:, : ours.shape[1]].transpose(3, 1, 2, 0)
        else:
            # body selection against the pyskl transcription; PreNormalize3D itself is checked
            # against a loop transcription in test_normalize.py
            ref = pre_normalize_3d(ref_mmaction2_sample(path), dtype=np.float32)
            assert persons == ref.shape[0]
            ref = np.concatenate([ref, np.zeros((2 - len(ref), *ref.shape[1:]), np.float32)])
        assert ref.shape == ours.shape, trial
        np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0, err_msg=f"trial {trial}")


def test_2sagcn_normalisation_invariants():
    rng = np.random.default_rng(3)
    sample = np.stack([random_body(rng, 30), random_body(rng, 30, (0.7, 0.1, 3.3))]).astype(np.float32)
    # make person 0's shoulders perpendicular to its spine at frame 0 so both axes can be exact
    spine = sample[0, 0, 1] - sample[0, 0, 0]
    side = np.cross(spine, [0.0, 0.0, 1.0])
    sample[0, 0, 4] = sample[0, 0, 20] - 0.2 * side / np.linalg.norm(side)
    sample[0, 0, 8] = sample[0, 0, 20] + 0.2 * side / np.linalg.norm(side)
    out = pre_normalize_2sagcn(sample)
    np.testing.assert_allclose(out[0, :, 1], 0, atol=1e-6)  # centred on person 0's joint 2, every frame
    z = out[0, 0, 1] - out[0, 0, 0]
    x = out[0, 0, 8] - out[0, 0, 4]
    np.testing.assert_allclose(z / np.linalg.norm(z), [0, 0, 1], atol=1e-5)
    np.testing.assert_allclose(x / np.linalg.norm(x), [1, 0, 0], atol=1e-5)
    # rotations preserve lengths (bone lengths per frame)
    np.testing.assert_allclose(
        np.linalg.norm(out[1, 5, 3] - out[1, 5, 2]), np.linalg.norm(sample[1, 5, 3] - sample[1, 5, 2]), rtol=1e-5
    )


def test_2sagcn_padding_repeats_and_shifts():
    rng = np.random.default_rng(4)
    body = random_body(rng, 10).astype(np.float32)
    sample = np.zeros((2, 16, 25, 3), np.float32)
    sample[0, :10] = body
    sample[1, 3:8] = body[:5] + 1  # enters late and leaves early
    out = pre_normalize_2sagcn(sample)
    assert (np.abs(out).sum(axis=(2, 3)) > 0).all()  # every frame filled for both persons
    # person 0 frames 10..15 repeat frames 0..5 (after the same per-frame transform)
    np.testing.assert_allclose(out[0, 10:16] - out[0, 10:16, 1:2], out[0, 0:6] - out[0, 0:6, 1:2], atol=1e-5)


def test_file_without_bodies_is_rejected(tmp_path):
    path = write_skeleton(tmp_path / "S001C001P001R001A001.skeleton", [[], [], []])
    for recipe in ("2s-agcn", "mmaction2"):
        with pytest.raises(SkeletonError, match="no body"):
            make_sample(parse_skeleton(path), recipe, NORM)
