# SPDX-License-Identifier: Apache-2.0
"""Flattened message keys: what the suffix after a message family's prefix says, parsed once per distinct key.

Handles OpenLLMetry legacy ``{i}.role``/``{i}.content``/``{i}.tool_calls.{j}.name|arguments`` and OpenInference
``{i}.message.role``/``.content``/``.contents.{j}.message_content.text|type``/
``.tool_calls.{k}.tool_call.function.name|arguments``, plus ``{i}.prompt.text``/``{i}.completion.text``.
:func:`flat_part` is called by the key classification (:mod:`.scan`), whose memo is bounded by distinct keys, so a
span's flattened messages are assembled (:mod:`.content`) from ready :class:`FlatPart` records without parsing a key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from opentelemetry_exporter_lumiqtrace.mapping.conventions import Family


class PartKind(enum.IntEnum):
    ROLE = 1
    CONTENT = 2  # {i}.content, {i}.text
    PART_TEXT = 3  # {i}.contents.{j}.*text
    PART_TYPE = 4  # {i}.contents.{j}.*type
    CALL_NAME = 5  # {i}.tool_calls.{j}.*name
    CALL_ARGUMENTS = 6  # {i}.tool_calls.{j}.*arguments
    CALL_OTHER = 7  # any other {i}.tool_calls.{j}.*: the call exists (it renders as "name(arguments)" of nothing)


@dataclass(frozen=True, slots=True)
class FlatPart:
    """One flattened message key: its family, the message index, what the value is, and the part or call index."""

    family: Family
    index: int
    kind: PartKind
    sub: int = 0


_LEADS = ("message.", "prompt.", "completion.")


def flat_part(family: Family, suffix: str) -> FlatPart | None:
    """The part a flattened key of ``family`` names by its suffix, or ``None`` when the message reader ignores it.

    Indices are decimal digits only (``isdecimal``, what ``int`` reads): a key such as ``llm.input_messages.².role``
    is ignored rather than failing the span.
    """
    idx_s, _, field = suffix.partition(".")
    if not idx_s.isdecimal() or not field:
        return None
    index = int(idx_s)
    for lead in _LEADS:
        if field.startswith(lead):
            field = field[len(lead) :]
            break
    if field == "role":
        return FlatPart(family, index, PartKind.ROLE)
    if field in ("content", "text"):
        return FlatPart(family, index, PartKind.CONTENT)
    if field.startswith("contents."):
        j, _, sub = field[9:].partition(".")
        if j.isdecimal() and sub.endswith("text"):
            return FlatPart(family, index, PartKind.PART_TEXT, int(j))
        if j.isdecimal() and sub.endswith("type"):
            return FlatPart(family, index, PartKind.PART_TYPE, int(j))
        return None
    if field.startswith("tool_calls."):
        j, _, sub = field[11:].partition(".")
        if not j.isdecimal():
            return None
        if sub.endswith("name"):
            return FlatPart(family, index, PartKind.CALL_NAME, int(j))
        if sub.endswith("arguments"):
            return FlatPart(family, index, PartKind.CALL_ARGUMENTS, int(j))
        return FlatPart(family, index, PartKind.CALL_OTHER, int(j))
    return None
