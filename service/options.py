"""How a clip is analysed, and what each kind of job carries: the ranges and defaults written once, for
/v1/video, /v1/jobs, study sessions and emotion-cli alike."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

FPS_RANGE = {"ge": 0.2, "le": 120}
SMOOTHING_RANGE = {"ge": 0, "le": 60}
FPS_HELP = "Frames analysed per second of video."
SMOOTHING_HELP = "Seconds of temporal smoothing per person; 0 turns it off."
DESCRIPTORS_HELP = "Also what each face does: 52 blendshapes, smile and other actions, gaze, and a mesh head pose."


class ClipOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    fps: float = Field(5.0, **FPS_RANGE, description=FPS_HELP)
    smoothing: float = Field(1.0, **SMOOTHING_RANGE, description=SMOOTHING_HELP)
    descriptors: bool = Field(False, description=DESCRIPTORS_HELP)


DEFAULT_CLIP = ClipOptions()

# A respondent's own answers about themselves (age band, gender, market...): segment keys are plain
# names, so `segment=KEY:VALUE` splits at the first colon.
ATTRIBUTE_KEY = r"^[A-Za-z0-9_.-]{1,64}$"
AttributeKey = Annotated[str, StringConstraints(pattern=ATTRIBUTE_KEY)]
AttributeValue = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Attributes = Annotated[dict[AttributeKey, AttributeValue], Field(max_length=16)]


class PhotoJob(BaseModel):
    """A photo job's options, as stored with the job."""

    model_config = ConfigDict(frozen=True)

    model: str | None = None  # the emotion model; None: the service's default when the job runs
    descriptors: bool = False


class ClipJob(ClipOptions):
    """A clip job's options, as stored with the job."""

    model: str | None = None


class SessionOrigin(BaseModel):
    """Where a session came from: an upload to the API, or a participant link, whose page measured how
    much of the ad was watched with the tab visible and how long the camera ran before the recording."""

    model_config = ConfigDict(frozen=True)

    source: Literal["api", "link"] = "api"
    mode: Literal["upload", "on-device"] = "upload"
    link_id: str | None = None
    visible_share: float | None = Field(None, ge=0, le=1)
    lead_in_s: float | None = Field(None, ge=0, le=3600)
    analysed_fps: float | None = Field(None, ge=0, le=60)  # on-device: the frame rate the viewer's browser kept


class SessionJob(BaseModel):
    """A study session's options, as stored with its job: which study and viewer, where the stimulus
    starts in the recording, and the model (name and version) the study is pinned to."""

    model_config = ConfigDict(frozen=True)

    study_id: str
    session_id: str
    viewer: str | None
    offset_s: float
    stimulus_duration_s: float
    model: str
    model_version: str
    attributes: Attributes = Field(default_factory=dict)
    origin: SessionOrigin = SessionOrigin()
