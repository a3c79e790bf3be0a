"""pose/track.py: people matched into tracks frame to frame, ordered as pyskl's skeleton demo orders them."""

import numpy as np
import pytest

from agcn_cli.errors import AgcnError
from agcn_cli.pose.people import FramePeople
from agcn_cli.pose.track import OnlineTracker, greedy_assignment, track_people

# a COCO-17 stick figure about 44 x 98 pixels around its centre
TEMPLATE = np.array(
    [[0, -45], [5, -48], [-5, -48], [10, -46], [-10, -46], [15, -25], [-15, -25], [20, -5], [-20, -5],
     [22, 10], [-22, 10], [10, 10], [-10, 10], [10, 30], [-10, 30], [10, 50], [-10, 50]],
    dtype=np.float32,
)  # fmt: skip


def body(x: float, y: float) -> np.ndarray:
    return TEMPLATE + np.float32([x, y])


def frame(people: list[tuple[float, float]], ids: list[int] | None = None) -> FramePeople:
    if not people:
        return FramePeople.empty(17)
    keypoints = np.stack([body(x, y) for x, y in people])
    return FramePeople(keypoints, np.ones((len(people), 17), np.float32), None if ids is None else np.array(ids))


def trajectory(points: list[tuple[float, float] | None]) -> tuple[np.ndarray, np.ndarray]:
    """The (T, V, 2) keypoints and (T, V) scores a track of these centres (None: absent) holds."""
    xy = np.stack([body(*p) if p else np.zeros((17, 2), np.float32) for p in points])
    return xy, np.array([np.full(17, 1.0 if p else 0.0, np.float32) for p in points])


def assert_track(tracks, m: int, points: list[tuple[float, float] | None]) -> None:
    xy, score = trajectory(points)
    np.testing.assert_array_equal(tracks.keypoint[m], xy)
    np.testing.assert_array_equal(tracks.keypoint_score[m], score)


def crossing(t: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Two people 60 px apart in y whose x paths cross between frames 14 and 15, 10 px a frame."""
    return (100 + 10 * t, 200), (390 - 10 * t, 260)


def test_two_people_crossing_keep_their_tracks():
    frames = [frame(list(crossing(t))) for t in range(30)]
    tracks = track_people(frames)
    assert tracks.keypoint.shape == (2, 30, 17, 2) and tracks.keypoint.dtype == np.float32
    assert tracks.keypoint_score.shape == (2, 30, 17)
    assert tracks.ids.tolist() == [0, 1]  # equal frame counts: the order they appeared in
    assert_track(tracks, 0, [crossing(t)[0] for t in range(30)])
    assert_track(tracks, 1, [crossing(t)[1] for t in range(30)])


def test_entering_and_leaving_people_each_form_one_track():
    a = [(100 + t, 200) for t in range(60)]  # all along
    c = [(300, 200) if t < 40 else None for t in range(60)]  # leaves at 40
    b = [(500, 200) if t >= 20 else None for t in range(60)]  # enters at 20
    d = [(700, 300) if t >= 41 else None for t in range(60)]  # enters just after c leaves
    frames = [frame([p[t] for p in (a, c, b, d) if p[t]]) for t in range(60)]
    tracks = track_people(frames)
    # 60 frames, then 40 and 40 (c began first), then 19
    assert tracks.ids.tolist() == [0, 1, 2, 3]
    for m, points in enumerate((a, c, b, d)):
        assert_track(tracks, m, points)


def test_a_gap_of_missing_frames_keeps_the_track():
    path = [(100 + 2 * t, 200) if not 10 <= t < 15 else None for t in range(30)]  # 5 empty frames
    frames = [frame([p] if p else []) for p in path]
    tracks = track_people(frames)
    assert tracks.ids.tolist() == [0]
    assert_track(tracks, 0, path)
    assert tracks.keypoint_score[0, 10:15].sum() == 0
    assert len(track_people(frames, max_gap=5).ids) == 1  # a gap of exactly max_gap frames joins
    split = track_people(frames, max_gap=4)
    assert split.ids.tolist() == [1, 0]  # 15 frames after the gap come before the 10 ahead of it
    assert_track(split, 0, [None] * 15 + path[15:])
    assert_track(split, 1, path[:10] + [None] * 20)


def test_detections_in_shuffled_order_still_track():
    rng = np.random.default_rng(3)
    still = (250, 400)
    people = [[*crossing(t), still] for t in range(30)]
    shuffled = [[p[k] for k in rng.permutation(3)] for p in people]
    tracks = track_people([frame(p) for p in shuffled])
    assert tracks.keypoint.shape == (3, 30, 17, 2)
    expected = {tuple(body(*people[0][k])[0]): [q[k] for q in people] for k in range(3)}  # by the frame-0 nose
    for m in range(3):
        assert_track(tracks, m, expected[tuple(tracks.keypoint[m, 0, 0])])


def test_ids_given_by_the_input_are_honoured():
    # id 5 is at the left for 10 frames, then at the right: geometry says otherwise, the ids decide
    frames = []
    for t in range(20):
        left, right = (100, 200), (400, 200)
        people, ids = ([left, right], [5, 9]) if t < 10 else ([right, left], [5, 9])
        if t == 19:
            people, ids = people[:1], ids[:1]  # 9 is missing in the last frame
        order = [1, 0] if t % 2 and len(ids) == 2 else list(range(len(ids)))
        frames.append(frame([people[k] for k in order], [ids[k] for k in order]))
    frames.append(frame([]))
    tracks = track_people(frames)
    assert tracks.ids.tolist() == [5, 9]  # 20 frames, then 19
    assert_track(tracks, 0, [(100, 200)] * 10 + [(400, 200)] * 10 + [None])
    assert_track(tracks, 1, [(400, 200)] * 10 + [(100, 200)] * 9 + [None, None])


def test_max_people_keeps_the_first_in_order():
    x = [(100, 200)] * 50  # 50 frames
    y = [(300, 200) if t < 30 else None for t in range(50)]  # 30
    z = [(500, 200) if t >= 10 else None for t in range(50)]  # 40
    frames = [frame([p[t] for p in (x, y, z) if p[t]]) for t in range(50)]
    assert track_people(frames).ids.tolist() == [0, 2, 1]
    tracks = track_people(frames, max_people=2)
    assert tracks.ids.tolist() == [0, 2] and tracks.keypoint.shape == (2, 50, 17, 2)
    assert_track(tracks, 0, x)
    assert_track(tracks, 1, z)
    assert track_people(frames, max_people=0).keypoint.shape == (0, 50, 17, 2)


def test_unscored_detections_and_empty_videos():
    junk = FramePeople(np.full((1, 17, 2), 50, np.float32), np.zeros((1, 17), np.float32))
    tracks = track_people([frame([(100, 200)]), junk, frame([(100, 200)])])
    assert tracks.ids.tolist() == [0] and tracks.keypoint_score[0, 1].sum() == 0
    empty = track_people([frame([])] * 4)
    assert empty.keypoint.shape == (0, 4, 17, 2) and empty.ids.shape == (0,)


@pytest.mark.parametrize(
    "frames, fragment",
    [
        ([frame([(1, 2), (3, 4)], [4, 4])], "frame 0: person id 4 is given to two people"),
        ([frame([(1, 2)], [4]), frame([(1, 2)])], "person ids are given in some frames but not in frame 1"),
        ([frame([(1, 2)]), FramePeople.empty(18)], "different joint counts"),
        ([], "no frames to track"),
    ],
)
def test_refusals(frames, fragment):
    with pytest.raises(AgcnError, match=fragment):
        track_people(frames)


def greedy_by_sorting(cost: np.ndarray, gate: float) -> list[tuple[int, int]]:
    """The rule spelled out: every pair by rising cost (ties: row, column), taken when both are free."""
    taken, rows, cols = [], set(), set()
    for c, i, j in sorted((cost[i, j], i, j) for i in range(cost.shape[0]) for j in range(cost.shape[1])):
        if c <= gate and i not in rows and j not in cols:
            taken.append((i, j))
            rows.add(i)
            cols.add(j)
    return sorted(taken)


def test_greedy_assignment_is_the_sorted_pairs_rule():
    rows, cols = greedy_assignment(np.array([[1.0, 2.0], [0.5, 3.0]]))
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]  # not the cheaper total
    rows, cols = greedy_assignment(np.array([[1.0, 2.0], [0.5, 3.0]]), gate=1.5)
    assert (rows.tolist(), cols.tolist()) == ([1], [0])
    rng = np.random.default_rng(0)
    for _ in range(300):  # small integer costs: many ties
        cost = rng.integers(0, 4, rng.integers(0, 6, 2)).astype(float)
        gate = float(rng.choice([np.inf, 1.0]))
        rows, cols = greedy_assignment(cost, gate)
        assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == greedy_by_sorting(cost, gate)


def held_ids(tracks, frames: list[FramePeople]) -> list[list[int]]:
    """Per frame, the id of the row that holds each person there (-1: none), found by the keypoints."""
    out = []
    for t, f in enumerate(frames):
        held = tracks.keypoint_score[:, t].max(axis=1, initial=0) > 0  # (M,)
        same = (tracks.keypoint[None, :, t] == f.keypoints[:, None]).all(axis=(2, 3)) & held  # (P, M)
        out.append(np.where(same.any(axis=1), tracks.ids[same.argmax(axis=1)], -1).tolist())
    return out


def online(frames: list[FramePeople], **kwargs) -> list[list[int]]:
    tracker = OnlineTracker(**kwargs)
    return [tracker.update(t, f).tolist() for t, f in enumerate(frames)]


def entering_and_leaving() -> list[FramePeople]:
    a = [(100 + t, 200) for t in range(60)]
    c = [(300, 200) if t < 40 else None for t in range(60)]
    b = [(500, 200) if t >= 20 else None for t in range(60)]
    d = [(700, 300) if t >= 41 else None for t in range(60)]
    return [frame([p[t] for p in (a, c, b, d) if p[t]]) for t in range(60)]


def gap() -> list[FramePeople]:
    return [frame([(100 + 2 * t, 200)] if not 10 <= t < 15 else []) for t in range(30)]


def shuffled() -> list[FramePeople]:
    rng = np.random.default_rng(3)
    people = [[*crossing(t), (250, 400)] for t in range(30)]
    return [frame([p[k] for k in rng.permutation(3)]) for p in people]


def with_junk() -> list[FramePeople]:
    junk = FramePeople(np.full((1, 17, 2), 50, np.float32), np.zeros((1, 17), np.float32))
    both = FramePeople(
        np.concatenate([junk.keypoints, body(104, 200)[None]]),
        np.concatenate([junk.scores, np.ones((1, 17), np.float32)]),
    )
    return [frame([(100, 200)]), junk, frame([(102, 200)]), both]


CASES = {
    "crossing": (lambda: [frame(list(crossing(t))) for t in range(30)], {}),
    "entering and leaving": (entering_and_leaving, {}),
    "gap": (gap, {}),
    "gap of max_gap": (gap, {"max_gap": 5}),
    "gap over max_gap": (gap, {"max_gap": 4}),
    "shuffled": (shuffled, {}),
    "unscored": (with_junk, {}),
    "no gate": (entering_and_leaving, {"gate": np.inf}),
}


@pytest.mark.parametrize("case", CASES)
def test_online_tracker_frame_by_frame_gives_track_peoples_ids(case):
    make, kwargs = CASES[case]
    frames = make()
    assert online(frames, **kwargs) == held_ids(track_people(frames, **kwargs), frames)


def test_online_tracker_ids_as_frames_arrive():
    assert online([frame(list(crossing(t))) for t in range(30)]) == [[0, 1]] * 30
    assert online(with_junk()) == [[0], [-1], [0], [-1, 0]]
    assert online(gap(), max_gap=4) == [[0]] * 10 + [[]] * 5 + [[1]] * 15
    # frame numbers may skip: frames left out are frames without people
    tracker = OnlineTracker(max_gap=4)
    assert [tracker.update(t, f).tolist() for t, f in enumerate(gap()) if f.count] == [[0]] * 10 + [[1]] * 15


def test_online_frames_must_come_in_order():
    tracker = OnlineTracker()
    assert tracker.update(3, frame([(100, 200)])).tolist() == [0]
    for t in (3, 2):
        with pytest.raises(AgcnError, match=f"frame {t} after frame 3: frames must come in order"):
            tracker.update(t, frame([(300, 200)]))
    assert tracker.update(4, frame([(102, 200)])).tolist() == [0]  # a refused frame changed nothing
    with pytest.raises(AgcnError, match="different joint counts to track \\(frame 3 has 17 joints"):
        tracker.update(5, FramePeople.empty(18))


def test_online_ids_given_by_the_input_pass_through():
    tracker = OnlineTracker()
    assert tracker.update(0, frame([(100, 200), (400, 200)], [5, 9])).tolist() == [5, 9]
    assert tracker.update(1, frame([(400, 200), (100, 200)], [5, 9])).tolist() == [5, 9]  # whatever the geometry
    junk = FramePeople(np.full((2, 17, 2), 50, np.float32), np.float32([[0] * 17, [1] * 17]), np.array([7, 5]))
    assert tracker.update(2, junk).tolist() == [-1, 5]
    assert tracker.update(3, FramePeople(junk.keypoints[:1], junk.scores[:1])).tolist() == [-1]  # nobody shown
    assert tracker.live_tracks == 0  # nothing held: the ids are the tracks
    with pytest.raises(AgcnError, match="frame 4: person id 5 is given to two people"):
        tracker.update(4, frame([(1, 2), (3, 4)], [5, 5]))
    with pytest.raises(AgcnError, match="person ids are given in some frames but not in frame 5"):
        tracker.update(5, frame([(1, 2)]))
    tracker = OnlineTracker()
    tracker.update(0, frame([]))
    tracker.update(1, frame([(1, 2)]))
    with pytest.raises(AgcnError, match="person ids are given in some frames but not in frame 1"):
        tracker.update(2, frame([(1, 2)], [4]))


def test_online_memory_stays_bounded_on_an_endless_stream():
    rng = np.random.default_rng(0)
    tracker = OnlineTracker()
    lanes = [None, None, None]  # per lane: (x on entering, speed, frame entered) of the person in it, or None
    until = [0, 0, 0]  # the frame the lane's person leaves, or its next person enters
    numbers, held = set(), []
    for t in range(5000):
        for k in range(3):
            if t >= until[k]:
                lanes[k] = None if lanes[k] else (rng.uniform(0, 800), rng.choice([-4.0, 4.0]), t)
                until[k] = t + int(rng.integers(5, 40))
        people = [(p[0] + p[1] * (t - p[2]), 200 + 250 * k) for k, p in enumerate(lanes) if p]
        numbers.update(tracker.update(t, frame(people)).tolist())
        held.append(tracker.live_tracks)
        assert len(tracker._xy) == len(tracker._score) == len(tracker._frame) == tracker.live_tracks
    assert len(numbers) > 300  # hundreds of tracks came and went ...
    assert max(held) <= 6  # ... a handful held at once: each lane's person and those gone under 12 frames ago
