"""Request body limits checked before any parsing: size (413) and JSON nesting (422)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Message, Receive

# A JSON string, escapes included; an unterminated one runs to the end of the text.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = bytes(code for code in range(256) if code not in b"[]{}")
_INNERMOST = re.compile(rb"[\[{][\]}]")
_OPENINGS = re.compile(rb"[\[{]+")
# Python's parser accepts these, JSON (RFC 8259) does not, and no field here can hold them.
_NON_FINITE = re.compile(rb"-?\b(?:NaN|Infinity)\b")
# An exponent of three digits or more may overflow a float to infinity (1e400).
_BIG_EXPONENT = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?[eE]\+?[0-9]{3,}")
# A \uD800-\uDFFF escape after an even run of backslashes (an odd one escapes the u).
_SURROGATE_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u([dD][89a-fA-F][0-9a-fA-F]{2})")
# A surrogate UTF-8-encoded straight into the bytes, which Python's parser lets through.
_ENCODED_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")
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
        if has_non_finite_number(body):
            raise BodyRefused(
                422, "the JSON body holds NaN, Infinity or a number beyond 1.8e308; "
                "send finite numbers"
            )
        if has_lone_surrogate(body):
            raise BodyRefused(
                422, "the JSON body holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF); "
                "send valid Unicode text"
            )
    return BufferedBody(body=body, upstream=receive)


def has_lone_surrogate(body: bytes) -> bool:
    """True when a JSON text holds a UTF-16 surrogate outside a high-low pair.

    No database or encoder can store such a string, so it is refused at the edge.
    """
    if _ENCODED_SURROGATE.search(body):
        return True
    pending: int | None = None  # where the escape after an unpaired high one must start
    for match in _SURROGATE_ESCAPE.finditer(body):
        starts_at = match.end(1)
        if int(match.group(2), 16) < 0xDC00:
            if pending is not None:
                return True
            pending = match.end()
        elif pending != starts_at:
            return True
        else:
            pending = None
    return pending is not None


def has_non_finite_number(body: bytes) -> bool:
    """True when a JSON text has NaN, Infinity or a number too large for a float."""
    suspicious = b"NaN" in body or b"Infinity" in body or _BIG_EXPONENT.search(body)
    if not suspicious:
        return False
    bare = _STRING.sub(b'""', body)
    if _NON_FINITE.search(bare):
        return True
    return any(math.isinf(float(number)) for number in _BIG_EXPONENT.findall(bare))


def _too_large(limits: BodyLimits) -> str:
    return (
        f"the request body is larger than {limits.max_bytes} bytes; "
        "split a batch into smaller ones"
    )
