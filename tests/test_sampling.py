"""UniformSampleFrames indices: frozen test-mode cases, training distribution, batching."""

import numpy as np
import pytest

from agcn_cli.errors import AgcnError
from agcn_cli.skeleton.sampling import sample_batch_indices, sample_test_clips
from tests.reference.sampling import train_clip


def _test(num_frames: int, clip_len: int, num_clips: int) -> list[list[int]]:
    return sample_test_clips(num_frames, clip_len, num_clips=num_clips).tolist()


# --- test mode, deterministic cases worked out by hand -----------------------------------


def test_short_sequence_clips_start_at_even_spacing_and_wrap():
    # 5 < 8 frames, 5 >= 2 clips: clip i starts at i * 5 // 2 = 0, 2 and runs 8 frames mod 5.
    assert _test(5, 8, 2) == [[0, 1, 2, 3, 4, 0, 1, 2], [2, 3, 4, 0, 1, 2, 3, 4]]


def test_short_sequence_fewer_frames_than_clips_starts_at_clip_number():
    # 3 < 4 frames and 3 < 10 clips: clip i starts at i, 4 frames mod 3.
    expected = [[(i + j) % 3 for j in range(4)] for i in range(10)]
    assert expected[:4] == [[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2], [0, 1, 2, 0]]
    assert _test(3, 4, 10) == expected


def test_exact_clip_length_takes_every_frame():
    # num_frames == clip_len: nothing to skip (choice of 0 gaps), so 0..7.
    assert _test(8, 8, 1) == [[0, 1, 2, 3, 4, 5, 6, 7]]


def test_single_frame_repeats_it():
    assert _test(1, 5, 2) == [[0] * 5, [0] * 5]


# --- test mode, random cases frozen from the reference with RandomState(255) --------------
# Derived by running MMAction2's `_get_test_clips` algorithm (np.random.seed(255), then its
# choice/randint calls in order) in a scratch script, then frozen here.


def test_between_one_and_two_clip_lengths_matches_reference():
    # 12 frames, clip 8: 4 of the 9 gaps are skipped per clip (a gap after the last frame
    # drops the tail). Clip 0 skips gaps 2, 4, 6, 8.
    assert _test(12, 8, 3) == [
        [0, 1, 3, 4, 6, 7, 9, 10],
        [0, 1, 2, 4, 5, 7, 9, 11],
        [0, 1, 2, 4, 5, 7, 8, 10],
    ]


def test_long_sequence_one_frame_per_segment_matches_reference():
    # 100 frames, clip 10: segments [10i, 10i + 10), one uniform frame from each.
    got = _test(100, 10, 10)
    assert got == [
        [3, 19, 29, 36, 45, 58, 65, 79, 82, 94],
        [9, 10, 27, 31, 44, 51, 67, 70, 86, 96],
        [0, 16, 24, 34, 44, 54, 69, 74, 81, 91],
        [3, 13, 22, 35, 40, 52, 69, 77, 89, 99],
        [4, 17, 29, 39, 49, 58, 68, 72, 82, 93],
        [9, 15, 28, 38, 47, 55, 64, 74, 85, 97],
        [8, 10, 26, 38, 44, 56, 69, 79, 87, 94],
        [2, 12, 22, 36, 42, 54, 63, 74, 83, 97],
        [9, 19, 20, 37, 40, 59, 65, 76, 80, 98],
        [3, 19, 20, 37, 41, 56, 62, 70, 81, 96],
    ]
    assert all(10 * i <= v < 10 * (i + 1) for row in got for i, v in enumerate(row))


def test_300_frames_clip_100_matches_reference():
    # 300 frames, clip 100: segments [3i, 3i + 3); frozen as the offset within each segment.
    offsets = [
        "1121011201002100102222020000120011212102212110221121002221102201120020121012110202221002110222220022",
        "1100110200102110220122211100212100022120100001201112010220202111100201011011210210012200212020120111",
        "2010111022022011001010200120112210001212010212112222211210220111012001120012002011021002022010121010",
        "1110002020011022112220121222202212010020021200022222000002112100200222001121120220221211012111011201",
        "2021220012120100002120110210100221010112202210220121021110211121020002221221221010001111201211201102",
        "2011220110022121221212122212220011222121112022120111202111021211000211212011000210021111020112020112",
        "2010200001220012220001011212222212210002121202220212202000222202212211021200211020111021201201201222",
        "2101121201010112212022221221112221100112220021122001122102111122100212201202110210100021011021111010",
        "1110101202100000221222022021222111111021211100111021021002212020112020021202210222010210210020101102",
        "0122000211212012212121222111110020011210000112122012220201120002212102200011020202112200112102201200",
    ]
    expected = np.array([[int(ch) for ch in row] for row in offsets]) + 3 * np.arange(100)
    got = sample_test_clips(300, 100, num_clips=10)
    assert got.shape == (10, 100) and got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def test_test_mode_is_deterministic_and_leaves_global_state_alone():
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    a = sample_test_clips(150, 100, num_clips=10)
    b = sample_test_clips(150, 100, num_clips=10)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    # the seed matters, and each call restarts it (no state carried between samples)
    c = sample_test_clips(150, 100, num_clips=10, seed=0)
    assert not np.array_equal(a, c)


# --- training mode ----------------------------------------------------------------------


@pytest.mark.parametrize("num_frames", [1, 5, 99, 100, 101, 150, 199, 200, 201, 300, 1000])
def test_train_indices_in_range_and_structured(num_frames):
    rng = np.random.default_rng(0)
    clip_len = 100
    batch = sample_batch_indices(np.full(20, num_frames), clip_len, rng)
    oracle = [train_clip(num_frames, clip_len, rng) for _ in range(20)]
    for idx in [*batch, *oracle]:  # the batched sampler, and the per-sample rule it follows
        assert idx.shape == (clip_len,) and idx.dtype == np.int64
        assert idx.min() >= 0 and idx.max() < num_frames
        if num_frames < clip_len:  # consecutive frames from a start, wrapping
            assert np.all((idx[1:] - idx[:-1]) % num_frames == 1 % num_frames)
        elif num_frames < 2 * clip_len:  # increasing steps of 1 or 2, exactly num_frames - clip_len skips
            steps = np.diff(np.concatenate([[-1], idx, [num_frames]]))
            assert set(steps.tolist()) <= {1, 2}
            assert (steps == 2).sum() == num_frames - clip_len
        else:  # one frame in each segment
            bounds = np.arange(clip_len + 1) * num_frames // clip_len
            assert np.all((idx >= bounds[:-1]) & (idx < bounds[1:]))


def test_batch_training_clips_are_reproducible():
    nf = np.array([50, 7, 15, 300])
    a = sample_batch_indices(nf, 10, np.random.default_rng(1))
    b = sample_batch_indices(nf, 10, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 10)


def test_bad_lengths_raise():
    with pytest.raises(AgcnError, match="0 frames"):
        sample_test_clips(0, 10)
    with pytest.raises(AgcnError, match="clip length"):
        sample_test_clips(10, 0)
    with pytest.raises(AgcnError, match="0 frames"):
        sample_batch_indices(np.array([5, 0]), 4, np.random.default_rng(0))


# --- batched training sampler -------------------------------------------------------------


def test_batch_shapes_ranges_and_structure():
    rng = np.random.default_rng(3)
    nf = np.array([1, 3, 7, 8, 9, 12, 15, 16, 17, 40, 1000])
    out = sample_batch_indices(nf, 8, rng)
    assert out.shape == (len(nf), 8) and out.dtype == np.int64
    assert np.all(out >= 0) and np.all(out < nf[:, None])
    np.testing.assert_array_equal(out[0], np.zeros(8))
    for n, row in zip(nf, out, strict=True):
        if n >= 16:
            bounds = np.arange(9) * n // 8
            assert np.all((row >= bounds[:-1]) & (row < bounds[1:]))
    assert sample_batch_indices(np.array([], dtype=np.int64), 8, rng).shape == (0, 8)


def _frequencies(rows: np.ndarray) -> dict[tuple[int, ...], float]:
    keys, counts = np.unique(rows, axis=0, return_counts=True)
    return {tuple(k): c / len(rows) for k, c in zip(keys.tolist(), counts, strict=True)}


@pytest.mark.parametrize("num_frames", [3, 6, 9, 11])
def test_batch_distribution_matches_per_sample(num_frames):
    # clip 5: 3 is short, 6 and 9 skip 1 and 4 of 6 gaps, 11 is long.
    clip_len, draws = 5, 6000
    batch = sample_batch_indices(np.full(draws, num_frames), clip_len, np.random.default_rng(10))
    rng = np.random.default_rng(11)
    single = np.stack([train_clip(num_frames, clip_len, rng) for _ in range(draws)])
    fb, fs = _frequencies(batch), _frequencies(single)
    assert set(fb) == set(fs)  # same support
    for key in fs:  # and about the same frequency (uniform over the support)
        assert abs(fb[key] - fs[key]) < 0.03
    expected_support = {3: 3, 6: 6, 9: 15, 11: 3 * 2 * 2 * 2 * 2}[num_frames]
    assert len(fs) == expected_support
