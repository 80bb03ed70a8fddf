# SPDX-License-Identifier: Apache-2.0
"""What an AI span is: its model, provider (wire value and raw value) and kind (operation, span_kind)."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry_exporter_lumiqtrace.mapping import conventions as c
from opentelemetry_exporter_lumiqtrace.mapping.scan import Scan
from opentelemetry_exporter_lumiqtrace.mapping.values import as_str, fit, json_object

F = c.FIELDS
_KIND_BITS = (F["explicit_operation"].bit | F["explicit_span_kind"].bit | F["raw_operation"].bit | F["kind"].bit) | F[
    "tool_hint"
].bit


@dataclass(frozen=True, slots=True)
class Identity:
    model: str | None
    wire_model: str | None  # the model as the event's field (capped, UTF-8 clean)
    request_model: str | None  # the requested model when the response model differs (a tag)
    provider: str
    raw_provider: str | None
    operation: str
    span_kind: str
    raw_operation: str | None
    # Derived once per identity (the mapper memoises identities), not once per span:
    # the event's fields provider, model, operation and span_kind, in the event's order;
    event_fields: dict[str, str] = field(init=False, compare=False, repr=False)
    # (the provider value the pricing is asked with, the model a span is priced by from its tokens), None when it is
    # not priced (agent and workflow spans that aggregate their children's usage never are: double counting);
    pricing_key: tuple[str | None, str] | None = field(init=False, compare=False, repr=False)
    # (raw provider, raw operation, requested model), the identity's part of the identity tags memo key; None when one
    # is a str subclass (an equal key that would keep its type in the tags).
    tag_values: tuple[str | None, str | None, str | None] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        event_fields = {"provider": self.provider}
        if self.wire_model is not None:
            event_fields["model"] = self.wire_model
        event_fields["operation"] = self.operation
        event_fields["span_kind"] = self.span_kind
        tag_values = (self.raw_provider, self.raw_operation, self.request_model)
        pricing_provider = self.raw_provider or (self.provider if self.provider != "custom" else None)
        priced = self.span_kind == "llm" and self.model is not None
        derived = {
            "event_fields": event_fields,
            "pricing_key": (pricing_provider, self.model) if priced else None,
            "tag_values": tag_values if all(v is None or v.__class__ is str for v in tag_values) else None,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)


def identify(scan: Scan) -> Identity:
    model = scan.first(F["explicit_model"])
    if model is None:
        model = scan.first(F["response_model"])
    requested = scan.first(F["request_model"])
    if requested is None and model is None and scan.has(F["invocation_parameters"]):
        # OpenInference sets llm.model_name from the response only; a failed call keeps the requested model in
        # its invocation parameters.
        params = json_object(scan.attrs.get(c.OI_INVOCATION_PARAMETERS))
        requested = as_str(params.get("model")) if params is not None else None
    if model is None:
        model = requested
    request_model = requested if requested is not None and requested != model else None
    provider, raw_provider = _provider(scan, model)
    operation, span_kind, raw_operation = _kind(scan, model is not None)
    return Identity(
        model=model,
        wire_model=fit(model) if model is not None else None,
        request_model=request_model,
        provider=provider,
        raw_provider=raw_provider,
        operation=operation,
        span_kind=span_kind,
        raw_operation=raw_operation,
    )


def _provider(scan: Scan, model: str | None) -> tuple[str, str | None]:
    """(wire provider, raw provider value or None)."""
    explicit = scan.first(F["explicit_provider"])
    raw = explicit if explicit is not None else scan.first(F["provider"])
    if raw is not None:
        wire = c.PROVIDER_NORMALISATION.get(raw)  # already normalised, as most instrumentations send it
        if wire is not None:
            return wire, raw
        low = raw.strip().lower()
        wire = c.PROVIDER_NORMALISATION.get(low)
        if wire is None and explicit is not None and low in c.PROVIDERS:
            wire = low
        if wire is None and low == c.AZURE_RAW:
            system = scan.first(F["oi_system"])
            wire = "openai" if system is None or system.lower() == "openai" else "custom"
        return wire or "custom", raw
    host = scan.first(F["host"])
    if host is not None:
        name = host.lower()
        wire = c.HOST_EXACT.get(name)
        if wire is None:
            for suffix, candidate in c.HOST_SUFFIXES:
                if name.endswith(suffix):
                    wire = candidate
                    break
        if wire is not None:
            return wire, None
    if model is not None:
        low_model = model.lower()
        for prefix, candidate in c.MODEL_PREFIX_PROVIDERS:
            if low_model.startswith(prefix):
                if len(prefix) == 2 and len(low_model) > 2 and low_model[2] not in "-_":
                    continue  # "o1" must be o1 / o1-mini, not e.g. "o1xyz"
                return candidate, None
    return "custom", None


def _kind(scan: Scan, has_model: bool) -> tuple[str, str, str | None]:
    """(operation, span_kind, raw operation value or None)."""
    if not scan.present & _KIND_BITS:
        return ("chat", "llm", None) if has_model else ("custom", "general", None)
    explicit_op = scan.first(F["explicit_operation"])
    explicit_kind = scan.first(F["explicit_span_kind"])
    raw_op = scan.first(F["raw_operation"])
    derived = scan.first(F["kind"])
    if derived is None:
        if scan.first(F["tool_hint"]):
            derived = ("tool", "tool")
        elif has_model:
            derived = ("chat", "llm")
        else:
            derived = ("custom", "general")
    operation, span_kind = derived
    if explicit_op is not None:
        low = explicit_op.strip().lower()
        mapped = c.KIND_TABLE.get(low)
        if low in c.OPERATIONS:
            operation = low
        elif mapped is not None:
            operation = mapped[0]
        else:
            operation = "custom"
        if explicit_kind is None:
            span_kind = c.OPERATION_DEFAULT_KIND[operation] if mapped is None else mapped[1]
        raw_op = explicit_op
    if explicit_kind is not None:
        low = explicit_kind.strip().lower()
        if low in c.SPAN_KINDS:
            span_kind = low
        else:
            mapped = c.KIND_TABLE.get(low)
            span_kind = mapped[1] if mapped is not None else "general"
        if explicit_op is None:
            operation = c.KIND_DEFAULT_OPERATION[span_kind]
    return operation, span_kind, raw_op
