"""The studies API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from service.options import Attributes
from service.schemas import ModelRef

SessionState = Literal["queued", "receiving", "analysed", "excluded", "failed"]
LinkMode = Literal["upload", "on-device", "on-device-or-upload"]
Interval = tuple[float | None, float | None]
# A JSON number with no fraction is an integer (JSON Schema agrees): 5.0 is taken as 5, strictness aside.
# (The bounds come first: after the validator they would be lost from the JSON Schema.)
SessionCount = Annotated[
    int, Field(ge=1, le=1_000_000), BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)
]
# Request bodies: JSON true is not a time, nor "5" a number, and a field the body does not declare is refused.
REQUEST_BODY = ConfigDict(strict=True, extra="forbid")


class StudyEvent(BaseModel):
    model_config = REQUEST_BODY

    time_s: float = Field(ge=0, description="When it happens, in seconds from the stimulus's start.")
    label: str = Field(min_length=1, max_length=256, description='For example "brand appears".')


class StudyCreate(BaseModel):
    model_config = REQUEST_BODY

    name: str = Field(min_length=1, max_length=256)
    stimulus_duration_s: float = Field(
        ge=1, le=3600, description="Length of the stimulus every viewer watched; at most the longest accepted clip."
    )
    events: list[StudyEvent] = Field(default_factory=list, max_length=200)
    category: str | None = Field(
        None, min_length=1, max_length=64, description='What is tested, e.g. "snacks/30s": norms compare within it.'
    )
    callback_url: str | None = Field(
        None, max_length=2048, description="Where the study's signed events go (study.session.analysed, study.ready)."
    )
    target_sessions: SessionCount | None = Field(
        None, description="Valid sessions at which the study is ready: study.ready is sent once."
    )

    @model_validator(mode="after")
    def events_within_stimulus(self) -> StudyCreate:
        if any(event.time_s > self.stimulus_duration_s for event in self.events):
            raise ValueError("every event's time_s must fall within stimulus_duration_s")
        return self


class StudyInfo(BaseModel):
    study_id: str
    name: str
    stimulus_duration_s: float
    events: list[StudyEvent]
    created_at: datetime
    model: ModelRef | None = Field(None, description="The emotion model, pinned by the first session.")
    category: str | None = None
    callback_url: str | None = None
    target_sessions: int | None = None
    ready_at: datetime | None = Field(None, description="When the valid sessions reached target_sessions.")


class StudyList(BaseModel):
    studies: list[StudyInfo] = Field(description="Newest first.")
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last.")


class SessionAccepted(BaseModel):
    session_id: str
    job_id: str = Field(description="The analysis job: GET /v1/jobs/{job_id} follows it.")
    status: SessionState


class SessionInfo(BaseModel):
    session_id: str
    job_id: str | None = Field(description="The analysis job; null for a session analysed on the viewer's device.")
    viewer: str | None = Field(None, description="The client's pseudonymous viewer id, as sent.")
    offset_s: float
    created_at: datetime
    status: SessionState
    reason: str | None = Field(None, description="Why the session was excluded or failed.")
    presence: float | None = Field(None, description="Share of the stimulus's seconds with the viewer's face.")
    attributes: dict[str, str] = Field(description="The respondent's own answers, as sent: what segments split by.")
    source: Literal["api", "link"] = Field(description="An upload to the API, or a participant link.")
    mode: Literal["upload", "on-device"] = Field(
        description="Analysed on the server from a recording, or in the browser."
    )
    link_id: str | None = None
    visible_share: float | None = Field(None, description="Share of the ad watched with the page visible (links).")
    lead_in_s: float | None = Field(
        None, description="Seconds the camera ran before the recording began (links): where the camera's feed was."
    )
    analysed_fps: float | None = Field(None, description="On-device: frames a second the viewer's browser analysed.")


class SessionList(BaseModel):
    sessions: list[SessionInfo] = Field(description="In upload order.")
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last.")


class Exclusion(BaseModel):
    session_id: str
    reason: str


class SessionCounts(BaseModel):
    uploaded: int
    analysed: int = Field(description="Sessions whose analysis finished, valid or excluded.")
    valid: int = Field(description="Viewers who count: analysed and not excluded.")
    excluded: list[Exclusion]


class EmotionSecond(BaseModel):
    mean: float | None = Field(description="Mean probability over the viewers with a face at that second.")
    mean_ci: Interval = Field(description="95% bootstrap interval over viewers.")
    share: float | None = Field(description="Share of those viewers at or above the threshold.")
    share_ci: Interval = Field(description="95% Wilson interval.")


class ActionSecond(BaseModel):
    """What the viewers' faces did at one second, over those whose face was described (docs/studies.md#actions)."""

    n: int = Field(description="Valid viewers whose face was found and described at that second.")
    smile_share: float = Field(description="Share of them whose median `smile` reached the smile threshold.")
    smile_share_ci: Interval = Field(description="95% Wilson interval.")
    expressiveness: float = Field(description="Mean expressiveness: the most moved expression above its rest, 0-1.")
    expressiveness_ci: Interval = Field(description="95% bootstrap interval over viewers.")
    blink_rate: float = Field(description="Mean blinks a minute, each viewer's over the 5 s centred on the second.")
    blink_rate_ci: Interval = Field(description="95% bootstrap interval over viewers.")


class ReportSecond(BaseModel):
    t: int = Field(description="Second of the stimulus: t to t + 1.")
    n: int = Field(description="Valid viewers whose face was found at that second.")
    attention: float | None = Field(description="Share of valid viewers whose face was found and turned to the screen.")
    emotions: dict[str, EmotionSecond]
    valence: float | None = Field(description="Mean of happy minus (angry + disgust + fear + sad), -1 to 1.")
    actions: ActionSecond | None = Field(None, description="Null when no viewer's face was described at that second.")


class PeakMoment(BaseModel):
    t: int = Field(description="The first second of the peak.")
    t_from: int = Field(description="The peak's plateau: the run of seconds tied with it, from t_from to t_to.")
    t_to: int
    share: float
    share_lower: float = Field(description="The share's 95% Wilson lower bound: what peaks are ranked by.")
    n: int = Field(description="Viewers whose face was found at that second.")
    t_ci: Interval | None = Field(
        description="95% bootstrap interval of when the peak happens, over resamples with a peak; null unless most "
        "resamples have one."
    )
    resamples_with_peak: float = Field(description="Share of bootstrap resamples in which anyone reached it.")


class Moment(BaseModel):
    t: int
    share: float
    n: int


class EmotionSummary(BaseModel):
    ever_share: float | None = Field(description="Share of valid viewers at or above the threshold at any second.")
    ever_share_ci: Interval
    avg_share: float | None = Field(description="The share, averaged over the stimulus's seconds.")
    peak: PeakMoment | None = Field(
        description="Among seconds with enough viewers, the one whose share is most surely high; null if nobody "
        "reached the threshold there."
    )
    trough: Moment | None = Field(description="Among seconds with enough viewers, the lowest share.")
    ending: float | None = Field(description="The share at the last second.")


class BestMoment(PeakMoment):
    emotion: str


class QualityGate(BaseModel):
    """The settings behind which viewers and seconds count, echoed so a report says how it was made."""

    min_presence: float = Field(description="A viewer counts when their face is found in this share of seconds.")
    max_yaw_deg: float = Field(description="Attending: the face turned at most this far aside.")
    max_pitch_deg: float
    max_gaze_yaw_deg: float = Field(description="Attending, where described: the eyes at most this far aside.")
    smile_threshold: float = Field(description="Smiling: a second's median `smile` at least this.")
    min_viewers_per_second: int = Field(description="Faces a second needs to be a peak, a trough or the best moment.")


class ActionSummary(BaseModel):
    """What the viewers' faces did over the stimulus, viewers as the unit (docs/studies.md#actions)."""

    viewers: int = Field(description="Valid viewers with described seconds (recorded sessions; not on-device ones).")
    smile_ever_share: float = Field(description="Share of them who reached the smile threshold at any second.")
    smile_ever_share_ci: Interval
    smile_avg_share: float = Field(description="The smile share, averaged over the seconds with described faces.")
    smile_peak: Moment | None = Field(
        description="Among seconds with enough viewers, the one whose smile share is most surely high (highest "
        "Wilson lower bound); null if nobody smiled there."
    )
    expressiveness: float = Field(description="Mean over viewers of each viewer's mean expressiveness.")
    expressiveness_ci: Interval = Field(description="95% bootstrap interval over viewers.")
    blink_rate: float = Field(description="Mean over viewers of each viewer's blinks a minute.")
    blink_rate_ci: Interval = Field(description="95% bootstrap interval over viewers.")


class AttentionDrop(BaseModel):
    t: int = Field(description="The second at which attention falls most from the second before.")
    before: float
    after: float


class StudyReport(BaseModel):
    study_id: str
    name: str
    stimulus_duration_s: float
    events: list[StudyEvent]
    threshold: float
    figures_version: str = Field(description="Changes whenever a figure's definition changes (docs/studies.md).")
    models: dict[str, ModelRef] = Field(description="The models every trace of this study came from.")
    sessions: SessionCounts
    quality: QualityGate
    seconds: list[ReportSecond]
    summary: dict[str, EmotionSummary]
    best_moment: BestMoment | None = Field(
        description="Happy's peak (surprise counts as neither positive nor negative); null when it cannot be named."
    )
    best_moment_reason: str | None = Field(None, description="Why there is no best moment.")
    attention_drop: AttentionDrop | None
    expressiveness: float | None = Field(
        description="Over the seconds with faces, the mean share of viewers showing any emotion but neutral at or "
        "above the threshold."
    )
    actions: ActionSummary | None = Field(None, description="Null when no valid viewer's face was described.")
    segment: str | None = Field(None, description="KEY:VALUE when the report covers one segment's viewers only.")


class DifferingSecond(BaseModel):
    t: int
    difference: float = Field(description="Share in a minus share in b at that second.")
    p_adjusted: float = Field(description="Permutation p-value, adjusted for testing every second.")


class EmotionComparison(BaseModel):
    ever_share: tuple[float | None, float | None] = Field(description="(a, b)")
    ever_share_difference: float | None
    ever_share_ci: Interval
    ever_share_p: float | None = Field(description="Two-sided: Fisher's exact test, or the two-proportion z-test.")
    ever_share_test: Literal["fisher", "z"] = Field(description="Fisher's exact test below 10 viewers a side.")
    mean: tuple[float | None, float | None] = Field(description="Mean per-viewer probability (a, b).")
    mean_difference: float | None
    mean_ci: Interval = Field(description="95% bootstrap interval over viewers of each study.")
    mean_p: float | None = Field(description="Mann-Whitney U test on per-viewer means, two-sided.")
    mean_test: Literal["exact", "normal"] = Field(description="Exact below 10 viewers a side, else normal.")
    differing_seconds: list[DifferingSecond]


class ViewerMeanComparison(BaseModel):
    mean: tuple[float | None, float | None] = Field(description="Mean over viewers of each viewer's mean (a, b).")
    difference: float | None
    ci: Interval = Field(description="95% bootstrap interval over viewers of each study.")
    p: float | None = Field(description="Mann-Whitney U test on the per-viewer means, two-sided.")
    test: Literal["exact", "normal"] = Field(description="Exact below 10 viewers a side, else normal.")


class ActionComparison(BaseModel):
    """The face's actions compared, over the viewers whose faces were described (docs/studies.md#actions)."""

    viewers: tuple[int, int] = Field(description="Valid viewers with described seconds in a and in b.")
    smile_ever_share: tuple[float | None, float | None] = Field(description="(a, b)")
    smile_ever_share_difference: float | None
    smile_ever_share_ci: Interval
    smile_ever_share_p: float | None = Field(description="Two-sided: Fisher's exact or the two-proportion z-test.")
    smile_ever_share_test: Literal["fisher", "z"]
    smile_differing_seconds: list[DifferingSecond] = Field(description="Seconds whose smile shares differ.")
    expressiveness: ViewerMeanComparison
    blink_rate: ViewerMeanComparison = Field(description="Blinks a minute.")


class StudyComparison(BaseModel):
    a: str
    b: str
    viewers: tuple[int, int] = Field(description="Valid viewers of a and of b: the unit of every test.")
    seconds: int = Field(description="The seconds compared: the first ones, as many as the shorter stimulus has.")
    threshold: float
    figures_version: str
    warnings: list[str] = Field(description="What to know before trusting the figures: small groups, unequal lengths.")
    emotions: dict[str, EmotionComparison]
    actions: ActionComparison | None = Field(None, description="Null unless both sides have described viewers.")


class SegmentPanel(BaseModel):
    value: str
    viewers: int = Field(description="Valid viewers who gave this value.")
    report: StudyReport | None = Field(description="Null below the privacy floor.")


class SegmentComparison(BaseModel):
    a: str = Field(description="A value of the key.")
    b: str = Field(description='Another value, or "rest": every other value with figures.')
    comparison: StudyComparison


class StudySegments(BaseModel):
    study_id: str
    by: str
    threshold: float
    min_viewers: int = Field(description="The privacy floor: a segment with fewer valid viewers has no figures.")
    segments: list[SegmentPanel] = Field(description="Largest first.")
    comparisons: list[SegmentComparison] = Field(
        description="Two values with figures: one against the other; more: each against the rest."
    )


class NormMetric(BaseModel):
    value: float | None = Field(description="This study's figure (at threshold 0.5).")
    percentile: float | None = Field(
        description="Share of the category's other studies with a lower figure, ties counted half, 0 to 100; null "
        "until there are enough studies."
    )


class StudyNorms(BaseModel):
    study_id: str
    category: str | None
    studies: int = Field(description="The category's other studies with valid viewers, on the same model.")
    min_studies: int = Field(description="Percentiles are given from this many studies on.")
    metrics: dict[str, NormMetric]
    note: str | None = Field(None, description="Why there are no percentiles yet.")


class StimulusOut(BaseModel):
    duration_s: float
    width: int
    height: int
    content_type: str


class LinkCreate(BaseModel):
    model_config = REQUEST_BODY

    mode: LinkMode = Field(
        "upload",
        description="upload: the webcam recording is sent and analysed by the service. on-device: the viewer's "
        "browser analyses the webcam and sends per-second traces only; a browser that cannot keep up is screened "
        "out. on-device-or-upload: on the device where it can keep up, else an upload.",
    )
    return_url: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^https?://",
        description="Where the page sends the respondent at the end; {viewer} and {status} are filled in.",
    )
    expires_in_h: float = Field(168, gt=0, le=24 * 366)
    max_sessions: SessionCount | None = Field(None, description="Sessions after which the link is full.")


class LinkInfo(BaseModel):
    link_id: str
    url: str = Field(description="The participant page's path: append ?viewer=ID and a.KEY=VALUE answers.")
    mode: LinkMode
    return_url: str | None
    expires_at: datetime
    revoked_at: datetime | None
    max_sessions: int | None
    sessions: int = Field(description="Sessions made through the link.")
    opened: int = Field(description="Times the page was opened.")
    declined: int
    screened_out: int
    errors: int


class LinkList(BaseModel):
    links: list[LinkInfo]


Probability = Annotated[float, Field(ge=0, le=1)]
PROBABILITY_SUM_TOLERANCE = 1e-3


class DeviceSecond(BaseModel):
    """One second of the ad as the viewer's browser analysed it: what a recording's analysis reduces a
    second to."""

    analysed: int = Field(ge=0, le=60, description="Frames analysed in the second, with a face or not.")
    faces: int = Field(ge=0, le=60, description="Of those, frames in which the viewer's face was found.")
    probabilities: list[Probability] | None = Field(
        None, max_length=32, description="Median probability of each class over those frames; null without a face."
    )
    yaw_deg: float | None = Field(None, ge=0, le=90, description="Median |yaw| of the face over those frames.")
    pitch_deg: float | None = Field(None, ge=0, le=90, description="Median |pitch| of the face over those frames.")

    @model_validator(mode="after")
    def consistent(self) -> DeviceSecond:
        if self.faces > self.analysed:
            raise ValueError("faces cannot exceed analysed")
        if (self.faces == 0) != (self.probabilities is None):
            raise ValueError("probabilities are given exactly when faces were found")
        if self.probabilities is not None and abs(sum(self.probabilities) - 1) > PROBABILITY_SUM_TOLERANCE:
            raise ValueError("probabilities must sum to 1")
        return self


class DeviceTraceIn(BaseModel):
    """What an on-device participant page sends: progress while the ad plays, then the final trace."""

    viewer: str = Field(min_length=1, max_length=256)
    attributes: Attributes = Field(default_factory=dict)
    final: bool = Field(description="The last post of the session: its outcome is judged and recorded.")
    model: ModelRef = Field(description="The emotion graph the page ran: the study's pinned name and version.")
    offset_s: float = Field(ge=0, le=3600, description="Where the ad started on the page's clock.")
    lead_in_s: float = Field(ge=0, le=3600, description="How long the camera ran before the page's clock started.")
    recording_s: float = Field(ge=0, le=7200, description="How long the page analysed the camera, on its clock.")
    visible_share: float = Field(ge=0, le=1, description="Share of the ad played with the tab visible.")
    analysed_fps: float = Field(ge=0, le=60, description="Frames a second the page analysed.")
    first_second: int = Field(
        0, ge=0, le=3600, description="Progress: the ad second `seconds` starts at (those before were sent)."
    )
    seconds: list[DeviceSecond] = Field(
        max_length=3600, description="One per second of the ad from `first_second`; the final post sends them all."
    )


class DeviceTraceAccepted(BaseModel):
    session_id: str
    status: SessionState
