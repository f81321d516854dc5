"""Request body limits checked before any parsing: size (413) and JSON nesting (422)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Message, Receive

# A JSON string, escapes included; an unterminated one runs to the end of the text.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = bytes(code for code in range(256) if code not in b"[]{}")
_INNERMOST = re.compile(rb"[\[{][\]}]")
_OPENINGS = re.compile(rb"[\[{]+")
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyLimits(BaseModel):
    """How large and how deep a request body may be."""

    model_config = ConfigDict(extra="forbid")

    # A batch of 1,000 transactions is about 400 KB.
    max_bytes: int = Field(default=1_048_576, ge=1)
    # Transactions nest 2 levels and MCP's JSON-RPC about 5.
    max_json_depth: int = Field(default=32, ge=1)


class BodyRefused(Exception):
    """A body that must not reach the app; carries the HTTP status and a detail."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass
class BufferedBody:
    """A body read in full, handed to the app as if it came from the client."""

    body: bytes
    upstream: Receive
    _sent: bool = False

    async def receive(self) -> Message:
        if not self._sent:
            self._sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        # Later reads wait for the client to go away, as they would unbuffered.
        return await self.upstream()


def nests_deeper_than(body: bytes, limit: int) -> bool:
    """True when a JSON text nests arrays and objects more than `limit` levels deep.

    Works in passes of the regex engine, each peeling off the innermost level,
    so a megabyte costs milliseconds and no recursion. Unbalanced text counts
    its longest run of unclosed openings; the JSON parser reports the error later.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # too few openings to pass the limit; typical bodies end here
    brackets = _STRING.sub(b"", body).translate(None, delete=_NOT_BRACKET)
    depth = 0
    while brackets and depth <= limit:
        peeled = _INNERMOST.sub(b"", brackets)
        if peeled == brackets:
            runs = [len(run) for run in _OPENINGS.findall(brackets)]
            return depth + max(runs, default=0) > limit
        depth += 1
        brackets = peeled
    return depth > limit


def needs_body_check(method: str) -> bool:
    return method.upper() in _METHODS_WITH_BODY


async def read_checked_body(
    headers: dict[bytes, bytes], receive: Receive, limits: BodyLimits
) -> BufferedBody:
    """Reads the whole body within the limits, or raises BodyRefused.

    Raises:
        BodyRefused: 413 when the body is larger than allowed, 400 for a bad
            Content-Length, 422 when its JSON nests too deep.
    """
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise BodyRefused(400, "Content-Length must be a whole number of bytes") from None
        if length < 0:
            raise BodyRefused(400, "Content-Length must not be negative")
        if length > limits.max_bytes:
            raise BodyRefused(413, _too_large(limits))

    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_bytes:
            raise BodyRefused(413, _too_large(limits))
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)

    if body.lstrip()[:1] in (b"[", b"{"):
        if nests_deeper_than(body, limits.max_json_depth):
            raise BodyRefused(
                422,
                f"the JSON body nests more than {limits.max_json_depth} levels deep; "
                "send a flatter document",
            )
    return BufferedBody(body=body, upstream=receive)


def _too_large(limits: BodyLimits) -> str:
    return (
        f"the request body is larger than {limits.max_bytes} bytes; "
        "split a batch into smaller ones"
    )
