"""File uploads to Slack through the outbox (topic ``slack.upload``), with Slack's external
upload flow as slack_sdk's ``files_upload_v2`` implements it: ``files.getUploadURLExternal``
(a URL and a file id), a POST of the bytes to that URL, then ``files.completeUploadExternal``
with ``channel_id`` (and ``thread_ts`` for a reply in a thread) to share it.

A row holds the path of the file, never its bytes (an evidence bundle may be large): its
size and SHA-256 are taken when the row is queued, and a file that is gone or changed
since is a permanent failure (no retry brings it back). Slack's answers are translated as
for messages (``deliverer.translate``): 429 with ``Retry-After`` and 5xx are transient, as
is a failed POST to the upload URL (each attempt asks for a fresh URL); ``not_in_channel``,
``channel_not_found``, ``file_uploads_disabled`` and the like are permanent.

``files.completeUploadExternal`` can be called only once per upload, and a share whose
answer was lost cannot be recognised by its key (file shares carry no message metadata):
on a retry the deliverer first reads the newest page of the channel (or thread) for a
message sharing a file of the same name whose text carries the row's ``marker`` (for
evidence bundles, the manifest's SHA-256, which the comment names), and takes that as
delivered instead of sharing the file twice.

The person who asked for the upload (``requested_by``) is told the outcome ephemerally:
that it was posted, or, once the row is dead (at once for a permanent failure, after the
outbox's last attempt for a transient one), why not and where the file is kept. If the app
cannot post in the channel at all (``not_in_channel``), the note goes to the person's
direct messages with the app instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from integrations.slack.deliverer import translate
from workflows.errors import PermanentDeliveryError, TransientDeliveryError
from workflows.outbox import DeliveryItem
from workflows.ports import Delivery

log = logging.getLogger("patchgate.slack")

TOPIC = "slack.upload"
CHANNEL_GONE = frozenset({"not_in_channel", "channel_not_found", "is_archived"})

# Why an upload failed, in words for the person who asked (by Slack's error code).
REASONS = {
    "not_in_channel": "the app is not a member of this channel (invite it, then ask again)",
    "channel_not_found": "Slack does not know this channel, or the app cannot see it",
    "is_archived": "this channel is archived",
    "file_uploads_disabled": "file uploads are disabled in this workspace",
    "file_upload_size_restricted": "this workspace does not accept uploads this large",
    "invalid_auth": "Slack refused the app's token",
    "missing_scope": "the app lacks the files:write scope (reinstall it with the manifest)",
}


class FileUpload(BaseModel):
    """An upload row's payload (version 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["slack.file_upload"] = "slack.file_upload"
    version: Literal[1] = 1
    path: str  # absolute path of the file to upload, kept on disk
    filename: str
    title: str
    size: int
    sha256: str
    channel: str
    thread_ts: str | None = None
    initial_comment: str | None = None
    marker: str | None = None  # text of the share's comment that identifies this upload
    requested_by: str | None = None  # the person told the outcome
    kept_in: str | None = None  # where the file stays, for that note


def file_upload(
    path: Path,
    *,
    channel: str,
    title: str | None = None,
    thread_ts: str | None = None,
    initial_comment: str | None = None,
    marker: str | None = None,
    requested_by: str | None = None,
) -> dict[str, Any]:
    """The payload of an upload row for the file at ``path`` (its size and SHA-256 taken
    now, so that a file changed before delivery is refused rather than posted)."""
    data = path.read_bytes()
    return FileUpload(
        path=str(path.resolve()),
        filename=path.name,
        title=title or path.name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        channel=channel,
        thread_ts=thread_ts,
        initial_comment=initial_comment,
        marker=marker,
        requested_by=requested_by,
        kept_in=str(path.resolve().parent),
    ).model_dump(mode="json")


def reason(error: str) -> str:
    """The outbox's reason for a dead upload, in words (Slack's code kept in brackets)."""
    for code, words in REASONS.items():
        if code in error:
            return f"{words} ({code})"
    gave_up = re.match(r"gave up after (\d+) attempts: (.*)", error, re.DOTALL)
    if gave_up:
        return f"Slack kept failing, {gave_up.group(1)} tries ({gave_up.group(2)})"
    return error


class UploadDeliverer:
    """Implements ``workflows.outbox.Deliverer`` (and ``DeadLetterListener``) for
    topic ``slack.upload``."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def deliver(self, item: DeliveryItem) -> Delivery:
        upload = parse(item)
        data = await asyncio.to_thread(self._read, upload)  # off the event loop
        if item.attempts > 0 and (found := await self._find(upload)) is not None:
            await self._tell(upload, posted(upload))
            return found
        try:
            response = await self.client.files_upload_v2(
                file=data,
                filename=upload.filename,
                title=upload.title,
                channel=upload.channel,
                thread_ts=upload.thread_ts,
                initial_comment=upload.initial_comment,
            )
        except SlackRequestError as exc:  # the POST to the upload URL failed
            status = re.search(r"status: (\d+)", str(exc))
            raise TransientDeliveryError(
                f"Slack's upload URL answered HTTP {status.group(1) if status else '?'}"
            ) from exc
        except Exception as exc:
            raise translate(exc, f"file upload {item.key}") from exc
        files = response.get("files") or []
        file_id = files[0].get("id") if files else None
        await self._tell(upload, posted(upload))
        return Delivery({"channel": upload.channel, "file_id": file_id})

    async def dead_lettered(self, item: DeliveryItem, error: str) -> None:
        upload = parse(item)
        await self._tell(upload, refused(upload, error))

    # --- the parts ---------------------------------------------------------------------------

    @staticmethod
    def _read(upload: FileUpload) -> bytes:
        path = Path(upload.path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PermanentDeliveryError(
                f"the file {upload.path} no longer exists (it was deleted after the upload "
                "was queued)"
            ) from None
        except OSError as exc:
            raise PermanentDeliveryError(f"the file {upload.path} cannot be read: {exc}") from exc
        if len(data) != upload.size or hashlib.sha256(data).hexdigest() != upload.sha256:
            raise PermanentDeliveryError(
                f"the file {upload.path} changed after the upload was queued "
                f"({len(data)} bytes now, {upload.size} then); not posting a different file"
            )
        return data

    async def _find(self, upload: FileUpload) -> Delivery | None:
        """A share of this file an earlier attempt made, if its answer was lost."""
        if not upload.marker:
            return None
        try:
            if upload.thread_ts is None:
                response = await self.client.conversations_history(
                    channel=upload.channel, limit=200
                )
            else:
                response = await self.client.conversations_replies(
                    channel=upload.channel, ts=upload.thread_ts, limit=200
                )
        except Exception as exc:
            raise translate(exc, f"looking up the upload of {upload.filename}") from exc
        for msg in response.get("messages") or []:
            for shared in msg.get("files") or []:
                if shared.get("name") == upload.filename and upload.marker in (
                    msg.get("text") or ""
                ):
                    return Delivery(
                        {"channel": upload.channel, "file_id": shared.get("id"), "found": True}
                    )
        return None

    async def _tell(self, upload: FileUpload, text: str) -> None:
        """Tell the requester ephemerally; a DM when the app cannot post in the channel.
        A note that cannot be sent is logged: the upload's own outcome stands."""
        if upload.requested_by is None:
            return
        try:
            await self.client.chat_postEphemeral(
                channel=upload.channel, user=upload.requested_by, text=text
            )
            return
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            if error not in CHANNEL_GONE:
                self._untold(upload, exc)
                return
        except Exception as exc:
            self._untold(upload, exc)
            return
        try:
            await self.client.chat_postMessage(channel=upload.requested_by, text=text)
        except Exception as exc:
            self._untold(upload, exc)

    @staticmethod
    def _untold(upload: FileUpload, exc: BaseException) -> None:
        log.warning(
            "could not tell %s about the upload of %s: %s",
            upload.requested_by,
            upload.filename,
            exc,
        )


def parse(item: DeliveryItem) -> FileUpload:
    try:
        return FileUpload.model_validate(dict(item.payload))
    except ValidationError as exc:  # no retry makes a payload readable
        raise PermanentDeliveryError(f"{item.key}: not a file upload: {exc}") from exc


def posted(upload: FileUpload) -> str:
    kept = f" (kept in {upload.kept_in})" if upload.kept_in else ""
    return f":white_check_mark: Posted `{upload.filename}`{kept}."


def refused(upload: FileUpload, error: str) -> str:
    kept = f" It is kept in {upload.kept_in}." if upload.kept_in else ""
    return f":warning: `{upload.filename}` could not be posted here: {reason(error)}.{kept}"
