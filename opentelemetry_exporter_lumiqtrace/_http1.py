# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 on a connected socket: one request out, its answer read back, all within one wall-clock deadline.

The transport gets its connections from requests and urllib3 (TLS context, hostname checks, proxies, CONNECT
tunnels) and runs each exchange on the connection's socket with the code below. http.client and urllib3 spend most
of a request's CPU on what an exporter never needs (header validation in two layers, ``email``-based header parsing,
header and response objects, timeout objects); this is what an exchange with LumiqTrace needs, and no more:

- the request goes out in one ``sendall``: head and body, one system call and one TCP segment where two were;
- the answer: status line, headers (bounded in count and bytes), and a body framed by ``Content-Length``, by the
  chunked coding or by the end of the connection; interim (1xx) answers are skipped; the body is capped, and what is
  past the cap is never read;
- every socket operation waits at most for the time left before the deadline, so a server that drips bytes, floods
  ``100 Continue`` or goes silent cannot hold a request past it (it raises ``TimeoutError``);
- the answer says whether the connection may carry another request: only when it was HTTP/1.1, fully read, framed,
  not ``Connection: close``, and nothing followed it. Any doubt closes the connection.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

# One answer's status line and headers together, and its header lines: a LumiqTrace answer has a handful.
DEFAULT_MAX_HEAD_BYTES = 64 * 1024
DEFAULT_MAX_HEADER_LINES = 100
# A chunk-size line ("1a2b;name=value"): no legitimate one comes near this.
_MAX_CHUNK_LINE_BYTES = 4096
_RECV_BYTES = 64 * 1024

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(r"HTTP/1\.([01]) ([0-9]{3})(?:[ \t].*)?")
_OWS = " \t"  # optional whitespace around values
_FOLD_STARTS = (" ", "\t")
# The header fields that frame an answer and decide whether its connection can be reused.
_FRAMING = ("connection", "transfer-encoding", "content-length")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
# Control characters other than horizontal tab cannot be in a header value (RFC 9110 5.5); CR and LF would end it.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET = re.compile(r"[!-~]+")


class ProtocolError(Exception):
    """The answer cannot be read as HTTP/1.1 (malformed, too large, or cut short): the connection must be closed."""


class RequestNotSent(ConnectionError):
    """Sending the request failed: the connection was already gone (reset or closed by the server)."""


class NoAnswer(ProtocolError):
    """The connection ended (closed or reset) before a single byte of an answer arrived."""


class Reply(NamedTuple):
    """One final answer. ``headers`` has lower-cased names; of a repeated header the last value is kept.

    ``body`` holds at most the cap; ``truncated`` says the answer had more (which was not kept).
    ``reusable``: the connection is clean and may carry the next request.
    """

    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool
    reusable: bool


def request_head(method: str, target: str, host: str, headers: Mapping[str, str]) -> bytes:
    """The request line and header lines, each ending in CRLF, without the blank line that ends the head.

    Raises ``ValueError`` naming the header (never quoting its value: it may be the API key) when a name or value
    cannot be sent as HTTP/1.1.
    """
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise ValueError("Invalid request line: the method or target has characters HTTP/1.1 cannot carry")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {_checked_value('Host', host)}"]
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError("Invalid header name: a header name must be an HTTP token")
        lines.append(f"{name}: {_checked_value(name, value)}")
    lines.append("")
    try:
        return "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("Invalid header value: a header value must be Latin-1 text") from None


def _checked_value(name: str, value: str) -> str:
    if _BAD_VALUE.search(value):
        raise ValueError(f"Invalid header value for {name}: control characters")
    return value


def exchange(sock: Any, request: bytes, *, deadline: float, max_body_bytes: int) -> Reply:
    """Send ``request`` (head and body, complete) on ``sock`` and read the final answer, by ``deadline``
    (``time.monotonic()``).

    Raises ``TimeoutError`` when the deadline passes, ``RequestNotSent`` when the request could not be sent,
    ``ProtocolError`` for an answer that cannot be read, and ``OSError`` when the connection fails meanwhile.
    """
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no time left to send the request")
    sock.settimeout(left)
    try:
        # A plain socket's sendall is bounded by the timeout as a whole; an SSL socket writes all in one SSL_write,
        # bounded the same way.
        sock.sendall(request)
    except TimeoutError:
        raise
    except OSError as exc:
        # A server may answer (413, 401, ...) and close before it read the whole request: what it said is the answer.
        try:
            early = _AnswerReader(sock, deadline).read(max_body_bytes)
        except TimeoutError:
            raise
        except (OSError, ProtocolError):
            raise RequestNotSent(f"{type(exc).__name__}: {exc}") from exc
        return early._replace(reusable=False)
    return _AnswerReader(sock, deadline).read(max_body_bytes)


class _AnswerReader:
    """Reads one answer from a socket through a buffer; every receive waits at most until the deadline."""

    __slots__ = ("_buf", "_deadline", "_overtime", "_pos", "_received", "_sock")

    def __init__(self, sock: Any, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already consumed
        self._overtime = False
        self._received = False  # any byte of an answer at all

    def read(self, max_body_bytes: int) -> Reply:
        while True:
            version, status, headers, repeated = self._head()
            if status >= 200:
                break
            if status == 101:  # never asked for: the connection would stop speaking HTTP
                raise ProtocolError("unexpected 101 Switching Protocols")
            # An interim answer (100 Continue, 103 Early Hints, ...) has no body; the final one follows. A server
            # that sends them forever is stopped by the deadline.
        framing = headers
        if repeated:  # a name more than once: the framing fields are lists, combined in order (RFC 9110 5.3)
            framing = {name: ", ".join(v for k, v in repeated if k == name) for name in _FRAMING if name in headers}
        connection = framing.get("connection")
        reusable = version == 1 and (connection is None or "close" not in _tokens(connection))
        transfer_coding = framing.get("transfer-encoding")
        content_length = framing.get("content-length")
        if status in (204, 304):
            body, truncated = b"", False
        elif transfer_coding is not None:
            if _tokens(transfer_coding)[-1] != "chunked":  # another coding last: the body ends with the connection
                reusable = False
                body, truncated = self._until_close(max_body_bytes)
            else:
                if content_length is not None:  # both framings: a smuggling attempt or a broken server
                    reusable = False
                body, truncated = self._chunked(max_body_bytes)
        elif content_length is not None:
            length = _content_length(content_length)
            if length > max_body_bytes:
                # Read up to the cap like any other answer (a dripping one times out): the length alone proves nothing.
                self._exactly(max_body_bytes + 1)
                body, truncated = b"", True
            else:
                body, truncated = self._exactly(length), False
        else:
            reusable = False
            body, truncated = self._until_close(max_body_bytes)
        if truncated or self._pos != len(self._buf):  # unread bytes: what follows is not ours to guess
            reusable = False
        return Reply(status, headers, body, truncated, reusable)

    # -- receiving -------------------------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Receive more bytes; False at the end of the connection."""
        left = self._deadline - time.monotonic()
        if left > 0:
            self._sock.settimeout(left)
            data = self._sock.recv(_RECV_BYTES)
        elif self._overtime:
            raise TimeoutError("the deadline passed while reading the answer")
        else:
            # Past the deadline, what already arrived is still taken, once and without waiting: an answer that came
            # in time is not thrown away because this thread ran late (a flood of bytes gets no more than this).
            self._overtime = True
            self._sock.settimeout(0.0)
            try:
                data = self._sock.recv(_RECV_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError):
                raise TimeoutError("the deadline passed while reading the answer") from None
        if not data:
            return False
        self._received = True
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        return True

    def _head(self) -> tuple[int, int, dict[str, str], list[tuple[str, str]] | None]:
        """One answer's status line and headers: (minor version, status, headers, and all header fields in order
        when a name is repeated, else None)."""
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n", self._pos)
            if end >= 0 and buf.find(b"\n\n", self._pos, end) < 0:
                text, self._pos = buf[self._pos : end].decode("latin-1"), end + 4
                break
            # Lines that end in a bare LF, as http.client tolerates: rare, so searched for second.
            found = _HEAD_END.search(buf, self._pos)
            if found is not None:
                text, self._pos = buf[self._pos : found.start()].decode("latin-1"), found.end()
                break
            if len(buf) - self._pos > DEFAULT_MAX_HEAD_BYTES:
                raise ProtocolError(f"answer headers larger than {DEFAULT_MAX_HEAD_BYTES} bytes")
            try:
                more = self._fill()
            except ConnectionError as exc:  # reset (or closed under a send): see NoAnswer
                if not self._received:
                    raise NoAnswer(f"connection reset before any answer ({type(exc).__name__})") from exc
                raise
            if not more:
                if not self._received:
                    raise NoAnswer("connection closed before any answer")
                raise ProtocolError("connection closed in the middle of the answer's headers")
        if len(text) > DEFAULT_MAX_HEAD_BYTES:
            raise ProtocolError(f"answer headers larger than {DEFAULT_MAX_HEAD_BYTES} bytes")
        if text.count("\n") == text.count("\r\n"):
            lines = text.split("\r\n")
        else:
            lines = [line.rstrip("\r") for line in text.split("\n")]
        matched = _STATUS_LINE.fullmatch(lines[0])
        if matched is None:
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:40]!r}")
        if len(lines) > DEFAULT_MAX_HEADER_LINES + 1:
            raise ProtocolError(f"more than {DEFAULT_MAX_HEADER_LINES} header lines")
        fields: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not _TOKEN.fullmatch(name):
                if line[:1] not in _FOLD_STARTS:
                    raise ProtocolError("malformed answer header line")
                # Obsolete line folding (RFC 9112 5.2): the line continues the previous value, joined by a space.
                if not fields:
                    raise ProtocolError("answer headers start with a continuation line")
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip(_OWS)}".strip(_OWS))
                continue
            fields.append((name.lower(), value.strip(_OWS)))
        headers = dict(fields)
        return int(matched.group(1)), int(matched.group(2)), headers, fields if len(headers) != len(fields) else None

    # -- bodies ----------------------------------------------------------------------------------------------

    def _exactly(self, length: int) -> bytes:
        while len(self._buf) - self._pos < length:
            if not self._fill():
                raise ProtocolError(
                    f"connection closed after {len(self._buf) - self._pos} of the answer's {length} body bytes"
                )
        start = self._pos
        self._pos += length
        return bytes(self._buf[start : self._pos])

    def _until_close(self, max_body_bytes: int) -> tuple[bytes, bool]:
        while len(self._buf) - self._pos <= max_body_bytes:
            if not self._fill():
                body = bytes(self._buf[self._pos :])
                self._pos = len(self._buf)
                return body, False
        return b"", True

    def _chunked(self, max_body_bytes: int) -> tuple[bytes, bool]:
        body = bytearray()
        while True:
            line = self._line(_MAX_CHUNK_LINE_BYTES, "chunk size")
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise ProtocolError("malformed chunk size in the answer")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(body) + size > max_body_bytes:
                self._exactly(max_body_bytes + 1 - len(body))
                return b"", True
            body += self._exactly(size)
            if self._line(2, "chunk end"):
                raise ProtocolError("chunk data longer than its size")
        # Trailer fields, up to the blank line: nothing the exporter reads; bounded like a head.
        trailer_bytes = 0
        while line := self._line(DEFAULT_MAX_HEAD_BYTES, "trailer"):
            trailer_bytes += len(line)
            if trailer_bytes > DEFAULT_MAX_HEAD_BYTES:
                raise ProtocolError(f"answer trailers larger than {DEFAULT_MAX_HEAD_BYTES} bytes")
        return bytes(body), False

    def _line(self, limit: int, what: str) -> bytes:
        """The next line without its line end (CRLF or LF), at most ``limit`` bytes."""
        while True:
            end = self._buf.find(b"\n", self._pos)
            if end >= 0:
                break
            if len(self._buf) - self._pos > limit:
                raise ProtocolError(f"{what} line longer than {limit} bytes")
            if not self._fill():
                raise ProtocolError(f"connection closed in the middle of the answer's body ({what})")
        if end - self._pos > limit + 1:
            raise ProtocolError(f"{what} line longer than {limit} bytes")
        line = bytes(self._buf[self._pos : end]).rstrip(b"\r")
        self._pos = end + 1
        return line


def _tokens(value: str) -> list[str]:
    """A list field's comma-separated tokens, lower-cased."""
    return [token.strip(_OWS).lower() for token in value.split(",")]


def _content_length(value: str) -> int:
    """The one body length all ``Content-Length`` values agree on (RFC 9112 6.3); anything else is an error."""
    if not (value.isascii() and value.isdigit()):
        values = set(_tokens(value))
        if len(values) != 1:
            raise ProtocolError("conflicting Content-Length values in the answer")
        (value,) = values
        if not (value.isascii() and value.isdigit()):
            raise ProtocolError("invalid Content-Length in the answer")
    if len(value) > 18:
        raise ProtocolError("invalid Content-Length in the answer")
    return int(value)
