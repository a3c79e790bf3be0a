"""Write small `.skeleton` files by hand for tests (the real format, CRLF line ends)."""

from pathlib import Path

import numpy as np


def write_skeleton(path: Path, frames: list[list[tuple[int, np.ndarray]]], newline: str = "\r\n") -> Path:
    """`frames[t]` lists the bodies of frame t as (body_id, joints (25, 3) metres)."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines.append(f"{body_id} 0 1 1 1 1 0 0.1 -0.2 2")
            lines.append(str(len(joints)))
            for x, y, z in joints:
                lines.append(f"{x:.7g} {y:.7g} {z:.7g} 250.1 180.2 900.3 500.4 0.1 0.2 0.3 0.9 2")
    path = Path(path)
    path.write_text(newline.join(lines) + newline)
    return path


def random_body(rng: np.random.Generator, frames: int, offset=(0.0, 0.0, 3.0)) -> np.ndarray:
    """(frames, 25, 3) plausible-ish joints: a random walk around a standing pose."""
    base = rng.normal(scale=0.12, size=(25, 3)) + np.asarray(offset)
    base[:, 1] = np.linspace(0.8, -0.8, 25)  # taller than wide
    drift = np.cumsum(rng.normal(scale=0.01, size=(frames, 25, 3)), axis=0)
    return base + drift
