"""Slow, structure-faithful transcriptions of lshiwjx/2s-AGCN `feeders/tools.py` (the parts the
Kinetics recipe uses) and of its feeder's order of calls, one sample (C, T, V, M) at a time.

The one change: the reference draws from the global `random` and `np.random` modules; here every
draw goes through the `np.random.Generator` passed in:
`random.randint(a, b)` -> `rng.integers(a, b + 1)`, `random.choice(seq)` ->
`seq[rng.integers(len(seq))]`, `np.random.choice(c, n)` -> `rng.choice(c, n)`.
"""

import numpy as np


def auto_pading(data_numpy, size, rng, random_pad=False):
    C, T, V, M = data_numpy.shape
    if T < size:
        begin = int(rng.integers(0, size - T + 1)) if random_pad else 0
        data_numpy_paded = np.zeros((C, size, V, M))
        data_numpy_paded[:, begin : begin + T, :, :] = data_numpy
        return data_numpy_paded
    else:
        return data_numpy


def random_choose(data_numpy, size, rng, auto_pad=True):
    C, T, V, M = data_numpy.shape
    if T == size:
        return data_numpy
    elif T < size:
        if auto_pad:
            return auto_pading(data_numpy, size, rng, random_pad=True)
        else:
            return data_numpy
    else:
        begin = int(rng.integers(0, T - size + 1))
        return data_numpy[:, begin : begin + size, :, :]


def random_move(
    data_numpy,
    rng,
    angle_candidate=(-10.0, -5.0, 0.0, 5.0, 10.0),
    scale_candidate=(0.9, 1.0, 1.1),
    transform_candidate=(-0.2, -0.1, 0.0, 0.1, 0.2),
    move_time_candidate=(1,),
):
    C, T, V, M = data_numpy.shape
    move_time = move_time_candidate[int(rng.integers(len(move_time_candidate)))]
    node = np.arange(0, T, T * 1.0 / move_time).round().astype(int)
    node = np.append(node, T)
    num_node = len(node)

    A = rng.choice(angle_candidate, num_node)
    S = rng.choice(scale_candidate, num_node)
    T_x = rng.choice(transform_candidate, num_node)
    T_y = rng.choice(transform_candidate, num_node)

    a = np.zeros(T)
    s = np.zeros(T)
    t_x = np.zeros(T)
    t_y = np.zeros(T)

    for i in range(num_node - 1):
        a[node[i] : node[i + 1]] = np.linspace(A[i], A[i + 1], node[i + 1] - node[i]) * np.pi / 180
        s[node[i] : node[i + 1]] = np.linspace(S[i], S[i + 1], node[i + 1] - node[i])
        t_x[node[i] : node[i + 1]] = np.linspace(T_x[i], T_x[i + 1], node[i + 1] - node[i])
        t_y[node[i] : node[i + 1]] = np.linspace(T_y[i], T_y[i + 1], node[i + 1] - node[i])

    theta = np.array([[np.cos(a) * s, -np.sin(a) * s], [np.sin(a) * s, np.cos(a) * s]])

    for i_frame in range(T):
        xy = data_numpy[0:2, i_frame, :, :]
        new_xy = np.dot(theta[:, :, i_frame], xy.reshape(2, -1))
        new_xy[0] += t_x[i_frame]
        new_xy[1] += t_y[i_frame]
        data_numpy[0:2, i_frame, :, :] = new_xy.reshape(2, V, M)

    return data_numpy


def feeder_item(data_numpy, rng, random_choose_=False, random_move_=False, window_size=-1):
    """`Feeder.__getitem__`'s transforms (no normalisation, no random_shift) on one padded sample."""
    data_numpy = np.array(data_numpy)
    if random_choose_:
        data_numpy = random_choose(data_numpy, window_size, rng)
    elif window_size > 0:
        data_numpy = auto_pading(data_numpy, window_size, rng)
    if random_move_:
        data_numpy = random_move(data_numpy, rng)
    return data_numpy
