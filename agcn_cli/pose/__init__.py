"""Pose estimation: frames of a video, or an estimator's per-frame files, to people's keypoints.

`people.py` (what one frame holds), `models.py` (where the pose weights are; the optional imports
of the `video` extra), `blazepose.py` (MediaPipe's BlazePose on LiteRT), `video.py` (decoding),
`keypoint_json.py` (OpenPose and MMPose per-frame output), `track.py` (people to stable tracks).
"""
