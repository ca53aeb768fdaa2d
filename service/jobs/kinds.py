"""Photo and video jobs: the synchronous endpoints' own answers (POST /v1/predict, /v1/video), so a
job's result is exactly the body that endpoint returns for the same input and options."""

from __future__ import annotations

from service.answers import VideoAnswer, analyse_photos, opened_clip, photo_answer
from service.jobs.queue import KindAnswer
from service.jobs.schema import PHOTO, VIDEO, Job
from service.jobs.usage import UsageMeter
from service.options import ClipJob, PhotoJob
from service.runtime import Runtime


def analysis_kinds(runtime: Runtime, usage: UsageMeter) -> dict[str, KindAnswer]:
    async def photo(job: Job, data: bytes) -> str:
        options = PhotoJob.model_validate(job.options)
        emotion = runtime.emotion(options.model)
        described = options.descriptors
        analysed = await analyse_photos(runtime, emotion, [data], usage.recorder(job.owner), described)
        return photo_answer(runtime, emotion, [job.filename], analysed, job.id, described).model_dump_json()

    async def video(job: Job, data: bytes) -> str:
        options = ClipJob.model_validate(job.options)
        emotion = runtime.emotion(options.model)
        clip = await opened_clip(runtime, data, options.fps)
        answer = VideoAnswer(runtime, emotion, clip, options, job.filename, job.id, True, usage.recorder(job.owner))
        return (await answer.response()).model_dump_json()

    return {PHOTO: photo, VIDEO: video}
