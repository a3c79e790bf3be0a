import numpy as np
import pytest

from agcn_cli.errors import AgcnError
from agcn_cli.sources.ntu import SkeletonError, get_benchmark, parse_name, parse_skeleton, read_name_list
from tests.helpers import write_skeleton


def _joints(scale: float) -> np.ndarray:
    return np.arange(75, dtype=np.float64).reshape(25, 3) * scale


def test_parse_tiny_file_by_hand(tmp_path):
    a, b = _joints(0.01), _joints(-0.02)
    path = write_skeleton(
        tmp_path / "S001C002P003R001A004.skeleton",
        [[(72057594037931101, a)], [], [(72057594037931101, a + 1), (72057594037931999, b)]],
    )
    sk = parse_skeleton(path)
    assert sk.num_frames == 3
    assert sk.bodies_per_frame.tolist() == [1, 0, 2]
    assert sk.frame.tolist() == [0, 2, 2]
    assert sk.slot.tolist() == [0, 0, 1]
    assert sk.body_id.tolist() == [72057594037931101, 72057594037931101, 72057594037931999]  # exact 64-bit ids
    assert sk.xyz.shape == (3, 25, 3)
    np.testing.assert_allclose(sk.xyz[0, 7], [0.21, 0.22, 0.23])
    np.testing.assert_allclose(sk.xyz[1, 24], [1.72, 1.73, 1.74])
    np.testing.assert_allclose(sk.xyz[2, 1], [-0.06, -0.08, -0.10])


def test_parse_lf_and_crlf_identical(tmp_path):
    frames = [[(1, _joints(0.1))], [(1, _joints(0.2))]]
    crlf = parse_skeleton(write_skeleton(tmp_path / "a.skeleton", frames))
    lf = parse_skeleton(write_skeleton(tmp_path / "b.skeleton", frames, newline="\n"))
    np.testing.assert_array_equal(crlf.xyz, lf.xyz)


def test_parse_name_fields():
    info = parse_name("S017C003P020R002A060.skeleton")
    assert (info.setup, info.camera, info.subject, info.replication, info.action, info.label) == (17, 3, 20, 2, 60, 59)
    with pytest.raises(SkeletonError, match="convention"):
        parse_name("S17C003P020R002A060.skeleton")


def test_benchmark_split_rules():
    x60 = get_benchmark("ntu60-xsub")
    assert x60.is_train(parse_name("S001C001P001R001A001"))
    assert not x60.is_train(parse_name("S001C001P003R001A001"))
    xview = get_benchmark("ntu60-xview")
    assert xview.is_train(parse_name("S001C002P003R001A001")) and xview.is_train(parse_name("S001C003P003R001A001"))
    assert not xview.is_train(parse_name("S001C001P001R001A001"))
    x120 = get_benchmark("ntu120-xsub")
    assert x120.is_train(parse_name("S020C001P103R001A100")) and not x120.is_train(parse_name("S020C001P104R001A100"))
    xset = get_benchmark("ntu120-xset")
    assert xset.is_train(parse_name("S002C001P001R001A001")) and not xset.is_train(parse_name("S003C001P001R001A001"))
    # NTU60 is setups 1-17 and actions 1-60
    assert x60.includes(parse_name("S017C001P001R001A060"))
    assert not x60.includes(parse_name("S018C001P001R001A001")) and not x60.includes(parse_name("S001C001P001R001A061"))
    assert x120.num_classes == 120 and x60.num_classes == 60
    with pytest.raises(AgcnError, match="choose one of"):
        get_benchmark("ntu60-xset")


def test_shipped_missing_lists():
    ntu60 = read_name_list(get_benchmark("ntu60-xsub").default_missing_list())
    ntu120 = read_name_list(get_benchmark("ntu120-xset").default_missing_list())
    assert len(ntu60) == 302 and len(ntu120) == 535
    assert ntu60 <= ntu120
    assert "S001C002P005R002A008" in ntu60


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ("3\r\n1\r\n", "truncated"),
        ("abc\r\n", "line 1: expected the number of frames"),
        ("1\r\n1\r\n1 2 3\r\n", "line 3: body info has 3 values"),
        ("1\r\n1\r\n" + "7 0 1 1 1 1 0 0 0 2\r\n" + "24\r\n", "line 4: 24 joints, expected 25"),
        ("1\r\n1\r\n" + "7 0 1 1 1 1 0 0 0 2\r\n25\r\n" + "0 0 1 0 0 0 0 0 0 0 0 2\r\n" * 10, "truncated"),
        ("1\r\n1\r\n7 0 1 1 1 1 0 0 0 2\r\n25\r\n" + "0 0 1 0 0 0 0 0 0 0 0 2\r\n" * 24 + "0 x 1 0 0 0 0 0 0 0 0 2\r\n",
         "line 29: non-numeric"),
        ("1\r\n1\r\n7 0 1 1 1 1 0 0 0 2\r\n25\r\n" + "0 nan 1 0 0 0 0 0 0 0 0 2\r\n" * 25, "line 5: non-finite"),
        ("1\r\n0\r\n5\r\n", "line 3: unexpected data after the last frame"),
        ("1\r\n1\r\nx.y 0 1 1 1 1 0 0 0 2\r\n", "line 3: body id"),
    ],
)  # fmt: skip
def test_malformed_files_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(content)
    with pytest.raises(SkeletonError) as e:
        parse_skeleton(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_binary_file(tmp_path):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_bytes(b"\x89PNG\xff\xfe")
    with pytest.raises(SkeletonError, match="not a text file"):
        parse_skeleton(path)
