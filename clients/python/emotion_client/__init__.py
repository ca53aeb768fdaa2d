"""A typed client for the emotion-recognition service: photos, clips, live streams, jobs, studies
and usage, sync (`EmotionClient`) and async (`AsyncEmotionClient`), and webhook verification.

Its answers estimate each face's visible expression, not anyone's inner state."""

from emotion_client.aio import AsyncEmotionClient
from emotion_client.errors import EmotionAPIError, JobNotFinished
from emotion_client.streams import StreamClosed
from emotion_client.sync import EmotionClient
from emotion_client.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "AsyncEmotionClient",
    "EmotionAPIError",
    "EmotionClient",
    "JobNotFinished",
    "StreamClosed",
    "WebhookVerificationError",
    "verify_webhook",
]
