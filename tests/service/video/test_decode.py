from pathlib import Path

import numpy as np
import pytest

from service.inference.errors import ImageRejected
from service.video.decode import Clip, VideoLimits
from tests.helpers.clips import PEOPLE, clip_bytes, clip_frames, ffmpeg, write_clip
from tests.helpers.data import videos_dir
from tests.helpers.faces import jpeg

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

ROOMY = VideoLimits(max_bytes=50 * 2**20, max_duration_s=600, max_frame_pixels=3840 * 2160, max_frames_analysed=3000)


@pytest.mark.parametrize("name", sorted(PEOPLE))
def test_every_shared_container_opens_from_memory_and_samples_by_time(name: str) -> None:
    clip = Clip(clip_bytes(name), ROOMY)
    frames = list(clip.frames(fps=5))
    times = [f.time_ms for f in frames]
    frame_ms = 1000 / clip.info.fps
    for k, time_ms in enumerate(times):  # the first frame at or after each 200 ms mark
        assert k * 200 - 1 <= time_ms <= k * 200 + frame_ms + 15, times
    assert len(frames) == pytest.approx(clip.info.duration_ms / 200, abs=1.5)
    assert frames[0].image.shape == (clip.info.height, clip.info.width, 3)


def test_sampling_at_the_clips_own_rate_keeps_every_frame() -> None:
    clip = Clip(clip_bytes("asl-thanks.mkv"), ROOMY)
    assert len(list(clip.frames(fps=clip.info.fps))) == 51


def test_avi_with_motion_jpeg_opens(tmp_path: Path) -> None:
    data = write_clip(tmp_path / "clip.avi", clip_frames("asl-thanks.mkv")[:10], fps=10, fourcc="MJPG")
    clip = Clip(data, ROOMY)
    assert (clip.info.width, clip.info.height) == (640, 480)
    assert len(list(clip.frames(fps=10))) == 10


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    ffmpeg("-i", str(videos_dir() / "asl-please.mp4"), "-c", "copy",
           "-metadata:s:v:0", "rotate=90", str(tmp_path / "rotated.mp4"))  # fmt: skip
    clip = Clip((tmp_path / "rotated.mp4").read_bytes(), ROOMY)
    assert (clip.info.width, clip.info.height) == (480, 640)
    assert next(clip.frames(fps=5)).image.shape == (640, 480, 3)


def test_variable_frame_rate_is_sampled_by_timestamps(tmp_path: Path) -> None:
    # First 36 frames at 30 fps (1.2 s), then one frame every 300 ms: 37 more make 11.1 s more.
    ffmpeg("-i", str(videos_dir() / "asl-please.mp4"),
           "-vf", "setpts='if(lt(N,36),N/30,1.2+(N-36)*0.3)/TB'", "-fps_mode", "vfr",
           "-c:v", "mpeg4", str(tmp_path / "vfr.mp4"))  # fmt: skip
    times = [f.time_ms for f in Clip((tmp_path / "vfr.mp4").read_bytes(), ROOMY).frames(fps=5)]
    early, late = [t for t in times if t < 1200], [t for t in times if t >= 1200]
    assert len(early) == 6  # 0, 200, ... 1000: every 200 ms while frames come every 33 ms
    gaps = np.diff(late)
    assert gaps.min() >= 290 and gaps.max() <= 310  # slower than the requested rate: every frame
    assert late[-1] == pytest.approx(1200 + 36 * 300, abs=40)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "empty"),
        (b"just some text, not a clip at all", 415, "unsupported_type"),
        (clip_bytes("asl-please.mp4")[:1000], 400, "undecodable"),
        (clip_bytes("asl-thanks.mkv")[:200], 400, "undecodable"),
    ],
)
def test_bad_clips_are_refused_with_their_own_codes(data: bytes, status: int, code: str) -> None:
    with pytest.raises(ImageRejected) as refused:
        Clip(data, ROOMY)
    assert (refused.value.status, refused.value.code) == (status, code)


def test_a_photo_is_pointed_to_the_photo_endpoint() -> None:
    with pytest.raises(ImageRejected, match="/v1/predict") as refused:
        Clip(jpeg(np.full((64, 64, 3), 128, np.uint8)), ROOMY)
    assert refused.value.code == "image_not_video"


def test_limits_are_checked_from_the_metadata_before_decoding() -> None:
    data = clip_bytes("two-people-head-pose.webm")  # 480x270, 4.7 s at 12 fps
    cases = [
        (VideoLimits(len(data) - 1, 600, 10**7, 10**4), "file_too_large"),
        (VideoLimits(len(data), 4.0, 10**7, 10**4), "video_too_long"),
        (VideoLimits(len(data), 600, 480 * 270 - 1, 10**4), "too_many_pixels"),
    ]
    for limits, code in cases:
        with pytest.raises(ImageRejected) as refused:
            Clip(data, limits)
        assert (refused.value.status, refused.value.code) == (413, code)
    clip = Clip(data, VideoLimits(len(data), 600, 10**7, 20))
    clip.check_sampling(2)  # about 9 frames
    with pytest.raises(ImageRejected, match="lower fps") as refused:
        clip.check_sampling(5)  # about 23
    assert refused.value.code == "too_many_frames"


def test_a_truncated_clip_yields_the_frames_before_the_cut() -> None:
    data = clip_bytes("asl-thanks.mkv")
    frames = list(Clip(data[: len(data) // 2], ROOMY).frames(fps=30))
    assert 5 < len(frames) < 51
