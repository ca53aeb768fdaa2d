"""The frame step shared by clips, live streams and the command line: one decoded frame in, the
tracked faces of that frame out.

It runs in two halves because they run in different places: `prepare` (cut check, detect, align)
blocks and runs in a worker thread; `track` (classify, then link into tracks) awaits the model and
runs on the event loop, in frame order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.config import TrackingSettings
from service.inference.faces import Faces
from service.inference.pipeline import AsyncClassify, ImageFaces, Pipeline
from service.tracking.schedule import DetectionSchedule
from service.tracking.tracker import CutDetector, FaceTracker


@dataclass(frozen=True)
class PreparedFrame:
    time_s: float
    prepared: ImageFaces
    cut: bool  # a hard cut since the previous frame: every track ends here


class FrameStep:
    """One clip's or stream's frames, in order; not shared between clips or streams. With a schedule,
    faces are detected over the whole frame on key frames only, and around the tracked faces between."""

    def __init__(
        self,
        pipeline: Pipeline,
        tracker: FaceTracker,
        schedule: DetectionSchedule | None = None,
        describe: bool = False,
    ) -> None:
        """`describe`: each face also gets its descriptors; a stream sets it from its first message."""
        self.describe = describe
        self.pipeline = pipeline
        self.tracker = tracker
        self.schedule = schedule
        self.cuts = CutDetector()
        self.classes = pipeline.classifier.classes

    def prepare(self, time_s: float, image: np.ndarray) -> PreparedFrame:
        """The blocking half: one thread at a time, frames in order."""
        cut = self.cuts.is_cut(image)
        if self.schedule is None:
            return PreparedFrame(time_s, self.pipeline.prepare_frame(image, describe=self.describe), cut)
        expected = self.schedule.plan(time_s, cut)
        prepared = self.pipeline.prepare_frame(image, expected, self.describe)
        self.schedule.seen(time_s, expected, prepared.faces)
        return PreparedFrame(time_s, prepared, cut)

    async def track(self, frame: PreparedFrame, classify: AsyncClassify) -> Faces:
        """The awaiting half: classify the frame's faces (if any) and link them to the tracks."""
        if frame.cut:
            self.tracker.reset()
        faces = frame.prepared.faces
        probabilities = await classify(faces.crops) if len(faces) else np.empty((0, len(self.classes)), np.float32)
        return self.tracker.update(frame.time_s, faces.with_columns(probabilities=probabilities))


def detection_schedule(tracking: TrackingSettings) -> DetectionSchedule | None:
    """The schedule the settings ask for; None: full-frame detection on every frame."""
    if tracking.detection == "full":
        return None
    return DetectionSchedule(tracking.key_interval_s, tracking.max_gap_s)
