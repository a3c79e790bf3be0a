"""Where the pose weights come from, and the optional imports of the `video` extra.

agcn runs MediaPipe's BlazePose (`pose_detection.tflite`, `pose_landmark_full.tflite`) with the
LiteRT interpreter (`ai-edge-litert`) and decodes videos with OpenCV (`opencv-python-headless`):
the `video` extra. The two model files ship inside the `mediapipe==0.10.21` wheel on PyPI, the last
release that carries them (later ones download them at run time). That wheel asks for `numpy<2`,
jax and opencv-contrib, which agcn needs none of, so it is installed without its dependencies
(`pip install --no-deps mediapipe==0.10.21`): agcn reads the two files out of the installed
package and never imports it. `AGCN_POSE_MODELS` may name a folder holding the two files, or a
downloaded mediapipe 0.10.21 wheel, instead. Each file is checked against its SHA-256 before use,
so a different model never runs silently. Nothing is downloaded at run time.
"""

import hashlib
import importlib.metadata
import os
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from ..errors import AgcnError

MEDIAPIPE_RELEASE = "0.10.21"
MODELS_ENV = "AGCN_POSE_MODELS"
INSTALL_VIDEO = (
    f"pip install 'agcn[video]' && pip install --no-deps mediapipe=={MEDIAPIPE_RELEASE} "
    "(data_specs/pose.md says why no-deps)"
)


@dataclass(frozen=True)
class ModelFile:
    member: str  # path inside the mediapipe package (and the wheel)
    sha256: str
    size: int


POSE_MODEL_FILES = {
    "detector": ModelFile(
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        2_959_046,
    ),
    "landmarks": ModelFile(
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        6_440_512,
    ),
}


def opencv() -> ModuleType:
    """cv2 (decoding, drawing), or one AgcnError line saying what to install."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # OpenCV's warnings would reach agcn's output as is
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # and FFmpeg's
    try:
        import cv2
    except ImportError as e:
        raise AgcnError(f"videos need the video extra ({e.name} is not installed): {INSTALL_VIDEO}") from None
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None:  # cv2 may have been imported before the variables were set
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    return cv2


def video_modules() -> tuple[ModuleType, type]:
    """(cv2, LiteRT's Interpreter class): what the pose estimator needs, or one AgcnError line
    saying what to install."""
    cv2 = opencv()
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise AgcnError(f"videos need the video extra ({e.name} is not installed): {INSTALL_VIDEO}") from None
    return cv2, Interpreter


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null for the block: TensorFlow Lite's C++ logging (the
    'Created TensorFlow Lite XNNPACK delegate' line) goes there, not through Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _checked(data: bytes, where: str, expected: ModelFile) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected.sha256:
        raise AgcnError(
            f"{where}: not the BlazePose model of mediapipe {MEDIAPIPE_RELEASE} ({len(data):,} bytes, sha256 "
            f"{digest[:12]}..., expected {expected.size:,} bytes, {expected.sha256[:12]}...); {INSTALL_VIDEO}"
        )
    return data


def _from_wheel(wheel: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(wheel) as z:
            names = set(z.namelist())
            missing = [f.member for f in POSE_MODEL_FILES.values() if f.member not in names]
            if missing:
                raise AgcnError(f"{wheel}: no {missing[0]} in it; use the mediapipe {MEDIAPIPE_RELEASE} wheel")
            return {k: _checked(z.read(f.member), f"{wheel}:{f.member}", f) for k, f in POSE_MODEL_FILES.items()}
    except (zipfile.BadZipFile, OSError) as e:
        raise AgcnError(f"{wheel}: cannot read it as a wheel ({e})") from None


def _from_folder(folder: Path) -> dict[str, bytes]:
    out = {}
    for key, f in POSE_MODEL_FILES.items():
        path = folder / Path(f.member).name
        if not path.is_file():
            raise AgcnError(f"{MODELS_ENV}={folder}: no {path.name} in it")
        out[key] = _checked(path.read_bytes(), str(path), f)
    return out


def _from_mediapipe() -> dict[str, bytes]:
    try:
        dist = importlib.metadata.distribution("mediapipe")
    except importlib.metadata.PackageNotFoundError:
        raise AgcnError(f"the BlazePose pose models are not installed: {INSTALL_VIDEO}") from None
    out = {}
    for key, f in POSE_MODEL_FILES.items():
        path = Path(str(dist.locate_file(f.member)))
        if not path.is_file():
            raise AgcnError(
                f"mediapipe {dist.version} is installed, but without {Path(f.member).name} (only mediapipe "
                f"{MEDIAPIPE_RELEASE} ships it): pip install --no-deps mediapipe=={MEDIAPIPE_RELEASE}"
            )
        out[key] = _checked(path.read_bytes(), str(path), f)
    return out


@cache
def pose_model_bytes() -> dict[str, bytes]:
    """{'detector': ..., 'landmarks': ...}: the two BlazePose .tflite files, checked."""
    given = os.environ.get(MODELS_ENV)
    if given:
        path = Path(given)
        if path.is_dir():
            return _from_folder(path)
        if path.is_file():
            return _from_wheel(path)
        raise AgcnError(f"{MODELS_ENV}={given}: no such folder or wheel file")
    return _from_mediapipe()
