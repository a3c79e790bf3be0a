"""Persons per sample: MMAction2's FormatGCNInput(num_person=2), cut or zero-padded.

Pure numpy. Every writer stores exactly NUM_PERSONS persons per sample; `fit_persons` is the one
rule for dropping extra persons and zero-padding missing ones."""

import numpy as np

NUM_PERSONS = 2  # persons stored per sample (zero-padded), MMAction2's FormatGCNInput(num_person=2)


def fit_persons(x: np.ndarray, axis: int = 0, num_persons: int = NUM_PERSONS) -> np.ndarray:
    """`x` with exactly `num_persons` along `axis`: extra persons dropped, missing ones zero."""
    m = x.shape[axis]
    if m >= num_persons:
        return x[(slice(None),) * axis + (slice(0, num_persons),)]
    pad = list(x.shape)
    pad[axis] = num_persons - m
    return np.concatenate([x, np.zeros(pad, dtype=x.dtype)], axis=axis)


def fit_and_count(sample: np.ndarray) -> tuple[np.ndarray, int]:
    """(M, T, V, C) -> (NUM_PERSONS, T, V, C) float32, a copy fitted by `fit_persons`, and the
    number of persons with any non-zero value among the kept ones."""
    out = fit_persons(np.array(sample, dtype=np.float32))
    persons = int((np.abs(out).reshape(len(out), -1).sum(axis=1) > 0).sum())
    return out, persons
