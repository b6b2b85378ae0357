"""Transcripts received on `{prefix}/voice/transcript` (CONTRACT §2): bytes -> Transcript."""

from __future__ import annotations

import json
import uuid

from edge_slm.errors import DecodeError
from edge_slm.events import Transcript
from edge_slm.sanitize import clean_text

MAX_TRANSCRIPT_BYTES = 4096
MAX_ID_CHARS = 128


def parse_transcript(payload: bytes, received_ts: float) -> Transcript:
    if len(payload) > MAX_TRANSCRIPT_BYTES:
        raise DecodeError(f"transcript payload too large ({len(payload)} bytes > {MAX_TRANSCRIPT_BYTES})")
    try:
        doc = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise DecodeError(f"transcript is not UTF-8 ({err.reason})") from err
    except RecursionError as err:
        raise DecodeError("transcript JSON nested too deeply") from err
    except ValueError as err:
        raise DecodeError(f"transcript is not valid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise DecodeError("transcript must be a JSON object")
    text = doc.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DecodeError("transcript needs a non-empty string 'text'")
    raw_id = doc.get("id")
    if raw_id is None or raw_id == "":
        transcript_id = uuid.uuid4().hex[:12]
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        transcript_id = clean_text(str(raw_id), MAX_ID_CHARS) or uuid.uuid4().hex[:12]
    else:
        raise DecodeError("transcript 'id' must be a string")
    clean = clean_text(text, MAX_TRANSCRIPT_BYTES)  # newlines, bidi overrides, controls: just spaces
    if not clean:
        raise DecodeError("transcript needs a non-empty string 'text'")
    return Transcript(id=transcript_id, text=clean, source="mqtt", received_ts=received_ts)
