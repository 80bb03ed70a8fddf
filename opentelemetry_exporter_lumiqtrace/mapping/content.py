# SPDX-License-Identifier: Apache-2.0
"""Prompt and response content: extraction from every convention, canonical form, ``prompt_hash``, rendering.

Canonical prompt (what ``prompt_hash`` hashes)
---------------------------------------------
The prompt is reduced to a list of messages, each ``{"role": <role>, "text": <text>}``:

* ``role`` is the message role, lower-cased (``system``, ``user``, ``assistant``, ``tool``, ...); ``unknown`` when
  the convention gives none. OTel ``gen_ai.system_instructions`` become a leading ``system`` message.
* ``text`` joins, with ``"\\n"``, in order: the text of every text-like part (text, reasoning, tool results), each
  tool call as ``name(arguments)`` with the arguments re-serialised as canonical JSON when they parse, and a
  ``[type]`` placeholder for binary or referenced parts (images, audio, files), whose data is never hashed.

The list is serialised with ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``,
encoded as UTF-8 (lone surrogates kept with ``surrogatepass``), and hashed with SHA-256; ``prompt_hash`` is the
64-character lowercase hex digest. The same conversation therefore hashes the same whether it came from OTel
``gen_ai.input.messages``, OpenLLMetry ``gen_ai.prompt.{i}.*``, OpenInference ``llm.input_messages.{i}.*`` or an
old ``gen_ai.content.prompt`` span event. When a span only has an opaque input (``input.value``,
``traceloop.entity.input``), the canonical prompt is that value as a single ``user`` message (an OpenAI-style JSON
request body is first unpacked to its ``messages``). The hash is computed over unredacted content, so it groups
identical prompts even though prompt text itself is only exported on opt-in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from opentelemetry_exporter_lumiqtrace.jsontext import json_string as _json_string
from opentelemetry_exporter_lumiqtrace.jsontext import json_string_utf8 as _json_string_utf8
from opentelemetry_exporter_lumiqtrace.mapping import conventions as c
from opentelemetry_exporter_lumiqtrace.mapping.flat import FlatPart, PartKind
from opentelemetry_exporter_lumiqtrace.mapping.scan import Scan
from opentelemetry_exporter_lumiqtrace.mapping.status import SpanEvents
from opentelemetry_exporter_lumiqtrace.mapping.values import cap, clean

_orjson: Any
try:  # the optional `speedups` extra
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the tox env without speedups
    _orjson = None

Message = tuple[str, str]

_ABSENT: Any = object()  # a key's default, told apart from a JSON null

_TEXT_TYPES = frozenset({"text", "input_text", "output_text", "reasoning", "thinking", "refusal"})
_CALL_TYPES = frozenset({"tool_call", "function_call", "tool_use", "server_tool_call"})
_RESULT_TYPES = frozenset({"tool_call_response", "function_call_output", "tool_result", "server_tool_call_response"})
_MAX_DEPTH = 8
_DECODER = json.JSONDecoder()
_JSON_SPACE = " \t\n\r"  # what JSON allows around a document (str.strip would take more)
# orjson reads integers in [-2**63, 2**64) exactly; the others become floats at least this large in magnitude.
_INT64_FLOAT = float(2**63)
# The canonical JSON of a message up to its text, as UTF-8, for the usual roles.
_ROLE_HEADS = {
    role: ('{"role":' + _json_string(role) + ',"text":').encode()
    for role in ("user", "assistant", "system", "tool", "developer", "model", "function", "unknown")
}


def _role_head(role: str) -> bytes:
    return _ROLE_HEADS.get(role) or b'{"role":' + _json_string_utf8(role) + b',"text":'


_ROLE = PartKind.ROLE
_CONTENT = PartKind.CONTENT
_PART_TEXT = PartKind.PART_TEXT
_PART_TYPE = PartKind.PART_TYPE
_CALL_NAME = PartKind.CALL_NAME
_CALL_ARGUMENTS = PartKind.CALL_ARGUMENTS


def _loads(value: str) -> Any:
    """``json.loads(value)``, or ``None`` when it fails; orjson reads it when it reads it the same, 2-4x faster."""
    if _orjson is not None:
        try:
            parsed = _orjson.loads(value)
        except ValueError:  # what orjson refuses (NaN, lone surrogates, 1e400, deep nesting) the stdlib decides
            pass
        else:
            if _same_as_stdlib(parsed):
                return parsed
    # json.loads is this raw_decode between two regex matches for JSON's whitespace, 1.5 us a call without them.
    try:
        parsed, end = _DECODER.raw_decode(value, len(value) - len(value.lstrip(_JSON_SPACE)))
    except (ValueError, RecursionError):
        return None
    if end != len(value) and value[end:].strip(_JSON_SPACE):
        return None  # json.loads' "Extra data"
    return parsed


def _same_as_stdlib(parsed: Any) -> bool:
    """Whether orjson's result is the stdlib's: orjson reads an integer beyond 64 bits as a float (2**64 becomes
    1.8446744073709552e+19) where the stdlib keeps the int, and the canonical JSON of tool arguments would change."""
    if parsed.__class__ is not dict and parsed.__class__ is not list:
        return parsed.__class__ is not float or -_INT64_FLOAT < parsed < _INT64_FLOAT
    containers = [parsed]
    while containers:
        container = containers.pop()
        for value in container.values() if container.__class__ is dict else container:
            cls = value.__class__
            if cls is dict or cls is list:
                containers.append(value)
            elif cls is float and not -_INT64_FLOAT < value < _INT64_FLOAT:
                return False
    return True


def _canonical_json(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        return str(value)


def _canonical_arguments(args: Any) -> str:
    if isinstance(args, str):
        stripped = args.strip()
        if stripped[:1] in ("{", "["):
            parsed = _loads(stripped)
            if parsed is not None:
                return _canonical_json(parsed)
        return args
    if args is None:
        return ""
    return _canonical_json(args)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return _canonical_json(value)


def _tool_call(obj: dict[str, Any]) -> str:
    fn = obj.get("function")
    if isinstance(fn, dict):
        return f"{_as_text(fn.get('name'))}({_canonical_arguments(fn.get('arguments'))})"
    args = obj.get("arguments", obj.get("input"))
    return f"{_as_text(obj.get('name'))}({_canonical_arguments(args)})"


def _part_texts(part: Any, out: list[str], depth: int) -> None:
    if isinstance(part, str):
        out.append(part)
        return
    if not isinstance(part, dict) or depth > _MAX_DEPTH:
        if part is not None:
            out.append(_as_text(part))
        return
    ptype = part.get("type")
    ptype = ptype.lower() if isinstance(ptype, str) else ""
    if ptype in _CALL_TYPES:
        out.append(_tool_call(part))
    elif ptype in _RESULT_TYPES:
        out.append(_as_text(part.get("result", part.get("response", part.get("output", part.get("content"))))))
    elif ptype in _TEXT_TYPES or not ptype:
        text = part.get("content", part.get("text"))
        if isinstance(text, list):
            for sub in text:
                _part_texts(sub, out, depth + 1)
        elif text is not None:
            out.append(_as_text(text))
    else:
        # Blobs, URIs, files, images: never hash or export the (possibly huge) data itself.
        out.append(f"[{ptype}]")


def _message(obj: Any, depth: int = 0) -> Message | None:
    # What json.loads makes is exactly dict, list or str: the class is compared first, isinstance decides the rest.
    if obj.__class__ is not dict:
        if isinstance(obj, str):
            return ("user", obj)
        if not isinstance(obj, dict):
            return None
    role = obj.get("role")
    role = role.lower() if (role.__class__ is str or isinstance(role, str)) and role else "unknown"
    out: list[str] = []
    parts = obj.get("parts")
    if parts is not None and (parts.__class__ is list or isinstance(parts, list)):
        for part in parts:
            # The usual part, OTel's {"type": "text", "content": ...}, without the general reader's dispatch.
            text = part.get("content") if part.__class__ is dict and part.get("type") == "text" else None
            if text.__class__ is str and depth < _MAX_DEPTH:
                out.append(text)
            else:
                _part_texts(part, out, depth + 1)
    content = obj.get("content", _ABSENT)
    if content is _ABSENT:
        content = obj.get("text")
    if content is not None:
        if content.__class__ is list or isinstance(content, list):
            for part in content:
                _part_texts(part, out, depth + 1)
        else:
            out.append(_as_text(content))
    calls = obj.get("tool_calls")
    if calls is not None and isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict):
                out.append(_tool_call(call))
    return (role, "\n".join(out))


def messages_from_json(value: Any) -> list[Message] | None:
    """Messages from a JSON attribute (OTel ``gen_ai.*.messages``, ``gen_ai.prompt`` event attribute, ...)."""
    if value.__class__ is not str and isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if value.__class__ is str or isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return None
        parsed = _loads(stripped) if stripped[:1] in ("[", "{") else None
        if parsed is None:
            return [("user", value)]
        value = parsed
    if value.__class__ is not list and isinstance(value, dict):
        inner = value.get("messages")
        value = inner if isinstance(inner, list) else [value]
    if value.__class__ is list or isinstance(value, (list, tuple)):
        out: list[Message] = []
        for item in value:
            message = _message(item)
            if message is not None:
                out.append(message)
        return out or None
    return None


def system_message(value: Any) -> Message | None:
    """The leading ``system`` message built from OTel ``gen_ai.system_instructions`` (a list of parts)."""
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return None
        parsed = _loads(stripped) if stripped[:1] in ("[", "{") else None
        value = parsed if parsed is not None else value
    out: list[str] = []
    if isinstance(value, (list, tuple)):
        for part in value:
            _part_texts(part, out, 1)
    else:
        _part_texts(value, out, 1)
    return ("system", "\n".join(out)) if out else None


def messages_from_flat(items: list[tuple[FlatPart, Any]]) -> list[Message] | None:
    """Messages from flattened attributes, given as ``(part, value)`` in attribute order (see :mod:`.flat`)."""
    # Per message index: role and content (most keys), parts and tool calls by their own index; a later key of the
    # same part wins, except that a part's type placeholder never replaces its text.
    roles: dict[int, Any] = {}
    contents: dict[int, Any] = {}
    parts: dict[int, dict[int, Any]] | None = None
    calls: dict[int, dict[int, dict[str, Any]]] | None = None
    for flat, value in items:
        kind = flat.kind
        if kind is _ROLE:
            roles[flat.index] = value
        elif kind is _CONTENT:
            contents[flat.index] = value
        elif kind is _PART_TEXT or kind is _PART_TYPE:
            if kind is _PART_TYPE and value == "text":
                continue
            if parts is None:
                parts = {}
            by_part = parts.setdefault(flat.index, {})
            if kind is _PART_TEXT:
                by_part[flat.sub] = value
            else:
                by_part.setdefault(flat.sub, f"[{value}]")
        else:
            if calls is None:
                calls = {}
            call = calls.setdefault(flat.index, {}).setdefault(flat.sub, {})
            if kind is _CALL_NAME:
                call["name"] = value
            elif kind is _CALL_ARGUMENTS:
                call["arguments"] = value
    indices = roles.keys() | contents.keys()
    if parts is not None:
        indices |= parts.keys()
    if calls is not None:
        indices |= calls.keys()
    out: list[Message] = []
    for idx in sorted(indices):
        role = roles.get(idx)
        role = role.lower() if isinstance(role, str) and role else "unknown"
        content = contents.get(idx)
        message_parts = parts.get(idx) if parts is not None else None
        message_calls = calls.get(idx) if calls is not None else None
        if content.__class__ is str and content[:1] != "[" and message_parts is None and message_calls is None:
            out.append((role, content))  # the usual message: one plain text
        else:
            out.append((role, _flat_text(content, message_parts, message_calls)))
    return out or None


def _flat_text(content: Any, parts: dict[int, Any] | None, calls: dict[int, dict[str, Any]] | None) -> str:
    """The text of a flattened message: its content, then its parts, then its tool calls."""
    texts: list[str] = []
    if content is not None:
        if isinstance(content, str) and content[:1] == "[":
            # OpenLLMetry serialises multimodal content lists as JSON.
            parsed = _loads(content)
            if isinstance(parsed, list):
                for part in parsed:
                    _part_texts(part, texts, 1)
            else:
                texts.append(content)
        else:
            texts.append(_as_text(content))
    if parts:
        texts.extend(_as_text(parts[j]) for j in sorted(parts))
    if calls:
        texts.extend(
            f"{_as_text(calls[j].get('name'))}({_canonical_arguments(calls[j].get('arguments'))})"
            for j in sorted(calls)
        )
    return "\n".join(texts)


def messages_from_value(value: Any) -> list[Message] | None:
    """Messages from an opaque input (``input.value``, ``traceloop.entity.input``, tool arguments)."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str):
        return [("user", _as_text(value))] if value is not None else None
    stripped = value.strip()
    if not stripped:
        return None
    if stripped[:1] == "{":
        parsed = _loads(stripped)
        if isinstance(parsed, dict):
            inner = parsed.get("messages")
            if not isinstance(inner, list):
                inner = parsed.get("input")
            if isinstance(inner, list):
                msgs = messages_from_json(inner)
                if msgs:
                    return msgs
            elif isinstance(inner, str) and inner:
                return [("user", inner)]
            prompt = parsed.get("prompt")
            if isinstance(prompt, str) and prompt:
                return [("user", prompt)]
    return [("user", value)]


def response_from_value(value: Any) -> str | None:
    """Response text from an opaque output (``output.value``, ``traceloop.entity.output``, tool results)."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str):
        return _as_text(value) if value is not None else None
    stripped = value.strip()
    if not stripped:
        return None
    if stripped[:1] == "{":
        parsed = _loads(stripped)
        if isinstance(parsed, dict):
            choices = parsed.get("choices")
            if isinstance(choices, list):
                texts: list[str] = []
                for choice in choices:
                    if isinstance(choice, dict):
                        msg = _message(choice.get("message")) if "message" in choice else None
                        if msg is not None:
                            texts.append(msg[1])
                        elif isinstance(choice.get("text"), str):
                            texts.append(choice["text"])
                if texts:
                    return "\n".join(texts)
            if isinstance(parsed.get("output_text"), str):
                return str(parsed["output_text"])
            content = parsed.get("content")
            if isinstance(content, list):
                out: list[str] = []
                for part in content:
                    _part_texts(part, out, 1)
                if out:
                    return "\n".join(out)
    return value


def prompt_hash(messages: list[Message]) -> str:
    """SHA-256 hex of the canonical prompt (see the module docstring)."""
    # Exactly json.dumps([{"role": role, "text": text}, ...], sort_keys=True, separators=(",", ":"),
    # ensure_ascii=False); without orjson, written with the encoder's string escaping instead of walking dicts.
    if not messages:
        return hashlib.sha256(b"[]").hexdigest()
    if _orjson is not None:
        # orjson writes a str exactly as encode_basestring does, as UTF-8, ~30x faster on a long prompt
        # (tests/test_mapping_properties.py checks the two agree), and compact; the keys are in sorted order already.
        # It refuses lone surrogates, which the stdlib keeps.
        try:
            serialised: bytes = _orjson.dumps([{"role": role, "text": text} for role, text in messages])
        except TypeError:
            pass
        else:
            return hashlib.sha256(serialised).hexdigest()
    # Fed to the hash piece by piece, as UTF-8: a long text is escaped and copied once, as bytes, instead of being
    # copied again by every concatenation of a canonical str.
    digest = hashlib.sha256()
    update = digest.update
    opening = b"["
    for role, text in messages:
        update(opening)
        update(_role_head(role))
        update(_json_string_utf8(text))
        opening = b"},"
    update(b"}]")
    return digest.hexdigest()


def render_prompt(messages: list[Message]) -> str:
    """Plain text for the ``prompt`` field: one ``role: text`` block per message."""
    # One join of the pieces: a formatted "role: text" per message would copy every (long) text twice.
    pieces: list[str] = []
    for role, text in messages:
        pieces += (role, ": ", text, "\n")
    return "".join(pieces[:-1])


def render_response(messages: list[Message]) -> str:
    """Plain text for the ``response`` field: the text of every output message."""
    return "\n".join([text for _, text in messages])


# --- the event's content fields -------------------------------------------------------------------------------------


def add_content(
    event: dict[str, Any], scan: Scan, events: SpanEvents, span_kind: str, *, capture: bool, max_chars: int
) -> None:
    """Set ``prompt_hash`` (whenever prompt content is visible) and, when ``capture``, ``prompt`` and ``response``."""
    attrs = scan.attrs
    prompt: list[Message] | None = None
    system = attrs.get(c.OT_SYSTEM_INSTRUCTIONS)
    ot_input = attrs.get(c.OT_INPUT_MESSAGES)
    if ot_input is not None or system is not None:
        prompt = messages_from_json(ot_input) if ot_input is not None else None
        sys_msg = system_message(system) if system is not None else None
        if sys_msg is not None:
            prompt = [sys_msg, *(prompt or ())]
    if prompt is None and scan.messages is not None:
        for family in c.PROMPT_FAMILIES:
            items = scan.messages.get(family)
            if items is not None:
                prompt = messages_from_flat(items)
                if prompt is not None:
                    break
    if prompt is None and events.prompt is not None:
        prompt = messages_from_json(events.prompt)
    hashable = prompt is not None
    if prompt is None:
        if span_kind == "tool" and attrs.get(c.OT_TOOL_ARGUMENTS) is not None:
            prompt = messages_from_value(attrs.get(c.OT_TOOL_ARGUMENTS))
        else:
            for key in (c.OI_INPUT_VALUE, c.OL_ENTITY_INPUT):
                value = attrs.get(key)
                if value is not None:
                    prompt = messages_from_value(value)
                    # Opaque inputs only count as "the prompt" on LLM spans; elsewhere they are chain/tool inputs.
                    hashable = span_kind == "llm"
                    break
    if prompt:
        if hashable:
            event["prompt_hash"] = prompt_hash(prompt)
        if capture:
            event["prompt"] = clean(cap(render_prompt(prompt), max_chars))
    if not capture:
        return
    response: str | None = None
    ot_output = attrs.get(c.OT_OUTPUT_MESSAGES)
    if ot_output is not None:
        msgs = messages_from_json(ot_output)
        response = render_response(msgs) if msgs else None
    if response is None and scan.messages is not None:
        for family in c.RESPONSE_FAMILIES:
            items = scan.messages.get(family)
            if items is not None:
                msgs = messages_from_flat(items)
                if msgs:
                    response = render_response(msgs)
                    break
    if response is None and events.completion is not None:
        msgs = messages_from_json(events.completion)
        response = render_response(msgs) if msgs else None
    if response is None:
        keys = (c.OT_TOOL_RESULT, c.OI_OUTPUT_VALUE, c.OL_ENTITY_OUTPUT)
        if span_kind != "tool":
            keys = (c.OI_OUTPUT_VALUE, c.OL_ENTITY_OUTPUT, c.OT_TOOL_RESULT)
        for key in keys:
            value = attrs.get(key)
            if value is not None:
                response = response_from_value(value)
                if response is not None:
                    break
    if response:
        event["response"] = clean(cap(response, max_chars))
