"""Server-sent events framing for streamed answers."""

from __future__ import annotations

import json

from engram.answers.generate import AnswerEvent


def sse_format(event: AnswerEvent) -> bytes:
    """One SSE frame: ``event: <type>\\ndata: <json>\\n\\n``, UTF-8.

    The JSON is on one line (``json.dumps`` escapes newlines inside strings), which the SSE
    format requires: a raw newline would end the ``data:`` field.
    """
    data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event.type}\ndata: {data}\n\n".encode()
