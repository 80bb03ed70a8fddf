# SPDX-License-Identifier: Apache-2.0
"""The conventions the mapping reads: attribute names, lookup tables and the declarative field table.

Names are plain strings on purpose: the GenAI conventions are still churning (``cache_creation`` became
``cache_write``, ``gen_ai.system`` became ``gen_ai.provider.name``) and their definitions moved repositories, so
importing them from ``opentelemetry.semconv._incubating`` would pin the exporter to one snapshot.

Every ``*_KEYS`` tuple is a precedence list (first present, usable value wins), ordered
``lumiqtrace.*`` > OTel GenAI (current, then deprecated) > OpenInference > OpenLLMetry (current, then legacy) > others.

:data:`FIELDS` at the end is what the mapper reads: for each field, its attribute keys in precedence order and the
parser of their values. Teaching the mapping a key an instrumentation starts emitting is one key in one of these
tuples (or one :class:`Field` line); prefix families (flattened messages, association properties,
``lumiqtrace.tags.*``) are :data:`PREFIX_FAMILIES`, and the key prefixes that make a span an AI span
:data:`AI_PREFIXES`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry_exporter_lumiqtrace.mapping.values import (
    as_bool,
    as_cost_details_total,
    as_finish_reason,
    as_float,
    as_int,
    as_str,
    as_value,
    json_object,
)

# --- wire enums -----------------------------------------------------------------------------------------------------

PROVIDERS = frozenset({"openai", "anthropic", "google", "custom"})
OPERATIONS = frozenset({"chat", "embed", "tool", "agent", "custom"})
SPAN_KINDS = frozenset({"llm", "agent", "tool", "planning", "handoff", "retriever", "guardrail", "general"})
STATUSES = frozenset({"success", "error", "timeout", "rate_limited", "cancelled"})

# --- explicit overrides ---------------------------------------------------------------------------------------------

LQT_PREFIX = "lumiqtrace."
LQT_TAGS_PREFIX = "lumiqtrace.tags."
# lumiqtrace.* keys that only carry context: they do not make an HTTP span an "AI span" on their own.
LQT_CONTEXT_KEYS = frozenset(
    {"lumiqtrace.user_id", "lumiqtrace.session_id", "lumiqtrace.environment", "lumiqtrace.sample_rate"}
)

# --- provider -------------------------------------------------------------------------------------------------------

LQT_PROVIDER = "lumiqtrace.provider"
PROVIDER_KEYS = (
    LQT_PROVIDER,
    "gen_ai.provider.name",
    "gen_ai.system",
    "llm.provider",
    "llm.system",
)
OI_SYSTEM = "llm.system"

# Lower-cased raw provider -> wire provider. Anything absent maps to "custom" (the API flavour decides, so
# Bedrock- or Vertex-hosted Claude stays "custom"; the raw value is kept in the tags).
PROVIDER_NORMALISATION = {
    "openai": "openai",
    "azure.ai.openai": "openai",
    "az.ai.openai": "openai",
    "anthropic": "anthropic",
    "gcp.gen_ai": "google",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "google": "google",
    "google.ai.studio": "google",
    "google_genai": "google",
    "google.genai": "google",
}
# OpenInference's hosting provider "azure" is OpenAI-on-Azure only when llm.system says openai (or is absent).
AZURE_RAW = "azure"

# Host names that identify a provider when an AI span carries no provider attribute.
HOST_KEYS = ("server.address", "net.peer.name")
HOST_EXACT = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "google",
}
HOST_SUFFIXES = (
    (".openai.azure.com", "openai"),
    ("aiplatform.googleapis.com", "google"),
)

# Last resort for AI spans without any provider hint: the model name. Order matters (Google's
# text-embedding-00x before OpenAI's text-embedding-).
MODEL_PREFIX_PROVIDERS = (
    ("text-embedding-00", "google"),
    ("gemini", "google"),
    ("gpt-", "openai"),
    ("chatgpt", "openai"),
    ("text-embedding-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("dall-e", "openai"),
    ("whisper", "openai"),
    ("tts-", "openai"),
    ("claude", "anthropic"),
)

# Lower-cased raw provider -> genai-prices provider id. Unmapped values pass None (genai-prices infers from the
# model); without this table "gcp.gen_ai" does not resolve and "azure.ai.openai" silently becomes "openai".
PRICING_PROVIDER_IDS = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure": "azure",
    "anthropic": "anthropic",
    "gcp.gen_ai": "google",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "google": "google",
    "google.ai.studio": "google",
    "aws.bedrock": "aws",
    "aws": "aws",
    "amazon": "aws",
    "bedrock": "aws",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "x_ai": "x-ai",  # genai-prices spells the provider id with a hyphen
    "xai": "x-ai",
    "groq": "groq",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
    "together_ai": "together",
    "together": "together",
    "togetherai": "together",
    "moonshot_ai": "moonshotai",
    "moonshot": "moonshotai",
}

# --- model ----------------------------------------------------------------------------------------------------------

LQT_MODEL = "lumiqtrace.model"
# The response model of any convention beats the request model of any convention.
RESPONSE_MODEL_KEYS = (
    "gen_ai.response.model",
    "llm.response.model_name",
    "llm.response.model",
)
REQUEST_MODEL_KEYS = (
    "gen_ai.request.model",
    "llm.model_name",
    "llm.request.model_name",
    "embedding.model_name",
    "reranker.model_name",
    "llm.request.model",
    "langfuse.observation.model.name",
)

# --- operation and span kind ----------------------------------------------------------------------------------------

LQT_OPERATION = "lumiqtrace.operation"
LQT_SPAN_KIND = "lumiqtrace.span_kind"
OT_OPERATION = "gen_ai.operation.name"
# Sources of "what kind of span is this", in precedence order. Values are looked up lower-cased in KIND_TABLE;
# a value the table does not know falls through to the next source.
KIND_KEYS = (
    "gen_ai.operation.name",
    "openinference.span.kind",
    "llm.request.type",
    "traceloop.span.kind",
    "langfuse.observation.type",
    "lmnr.span.type",
)
_CHAT_LLM = ("chat", "llm")
_EMBED_LLM = ("embed", "llm")
_TOOL = ("tool", "tool")
_AGENT = ("agent", "agent")
_CUSTOM_GENERAL = ("custom", "general")
_CUSTOM_RETRIEVER = ("custom", "retriever")
# Lower-cased value (OTel operation, OpenInference kind, OpenLLMetry request type / span kind, Langfuse/Laminar
# type) -> (operation, span_kind). One table serves every source because their vocabularies do not clash.
KIND_TABLE = {
    # OTel GenAI operations
    "chat": _CHAT_LLM,
    "text_completion": _CHAT_LLM,
    "generate_content": _CHAT_LLM,
    "embeddings": _EMBED_LLM,
    "execute_tool": _TOOL,
    "create_agent": _AGENT,
    "invoke_agent": _AGENT,
    "invoke_workflow": _CUSTOM_GENERAL,
    "handle_conversation_turn": _CUSTOM_GENERAL,
    "retrieval": _CUSTOM_RETRIEVER,
    "plan": ("custom", "planning"),
    "fetch_response": ("custom", "llm"),
    "apply_guardrail": ("custom", "guardrail"),
    "handoff": ("agent", "handoff"),
    # OpenInference span kinds
    "llm": _CHAT_LLM,
    "embedding": _EMBED_LLM,
    "tool": _TOOL,
    "agent": _AGENT,
    "chain": _CUSTOM_GENERAL,
    "retriever": _CUSTOM_RETRIEVER,
    "reranker": _CUSTOM_RETRIEVER,
    "guardrail": ("custom", "guardrail"),
    "evaluator": _CUSTOM_GENERAL,
    "prompt": _CUSTOM_GENERAL,
    # OpenLLMetry request types and traceloop span kinds
    "completion": _CHAT_LLM,
    "rerank": _CUSTOM_RETRIEVER,
    "workflow": _CUSTOM_GENERAL,
    "task": _CUSTOM_GENERAL,
    "vector_db_retrieve": _CUSTOM_RETRIEVER,
    "llm_request": _CHAT_LLM,
    "execute_task": _CUSTOM_GENERAL,
    # Langfuse observation types, Laminar span types
    "generation": _CHAT_LLM,
    "generate": _CHAT_LLM,
    "span": _CUSTOM_GENERAL,
    "event": _CUSTOM_GENERAL,
    "default": _CUSTOM_GENERAL,
}
# Mapping of an explicit lumiqtrace.operation / span_kind that is not itself a wire value.
OPERATION_DEFAULT_KIND = {"chat": "llm", "embed": "llm", "tool": "tool", "agent": "agent", "custom": "general"}
KIND_DEFAULT_OPERATION = {
    "llm": "chat",
    "agent": "agent",
    "tool": "tool",
    "handoff": "agent",
    "planning": "custom",
    "retriever": "custom",
    "guardrail": "custom",
    "general": "custom",
}
# OpenInference's openai-agents marks a handoff as a TOOL span named "handoff to <agent>".
HANDOFF_NAME_PREFIX = "handoff to "
TOOL_HINT_KEYS = ("gen_ai.tool.name", "gen_ai.tool.call.id", "tool.name")

# --- usage ----------------------------------------------------------------------------------------------------------

INPUT_TOKEN_KEYS = (
    "lumiqtrace.input_tokens",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
OUTPUT_TOKEN_KEYS = (
    "lumiqtrace.output_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
TOTAL_TOKEN_KEYS = ("gen_ai.usage.total_tokens", "llm.token_count.total", "llm.usage.total_tokens")
CACHE_READ_KEYS = (
    "lumiqtrace.cached_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE_KEYS = (
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_KEYS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)

# --- cost -----------------------------------------------------------------------------------------------------------

COST_KEYS = ("lumiqtrace.cost_usd", "operation.cost", "gen_ai.usage.cost", "llm.cost.total")
LANGFUSE_COST_DETAILS = "langfuse.observation.cost_details"

# --- timing and streaming -------------------------------------------------------------------------------------------

LQT_TTFT_MS = "lumiqtrace.ttft_ms"
TTFT_SECONDS_KEYS = (
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.client.operation.time_to_first_chunk",  # pydantic-ai
    "gen_ai.server.time_to_first_token",
    "gen_ai.server.ttft",
)
FIRST_CHUNK_EVENTS = frozenset(
    {"First Token Stream Event", "gen_ai.content.completion.chunk", "llm.content.completion.chunk"}
)
STREAM_KEYS = (
    "lumiqtrace.stream",
    "gen_ai.request.stream",
    "gen_ai.is_streaming",
    "llm.is_streaming",
    "gen_ai.request.is_stream",
)
OI_INVOCATION_PARAMETERS = "llm.invocation_parameters"
# Logfire's instrument_openai/anthropic: the request as a JSON object (logfire 5.x keeps only the model in it).
LOGFIRE_REQUEST_DATA = "request_data"
# Logfire records a streamed call's result as a log (start == end) whose "duration" attribute is the call's seconds.
LOGFIRE_SPAN_TYPE = "logfire.span_type"
LOGFIRE_LOG = "log"
LOGFIRE_DURATION = "duration"
LOGFIRE_MSG_TEMPLATE = "logfire.msg_template"
# Message templates of Logfire's streamed-call logs (lower case).
STREAMING_TEMPLATE_PREFIXES = ("streaming response from",)

# --- status ---------------------------------------------------------------------------------------------------------

LQT_STATUS = "lumiqtrace.status"
LQT_ERROR_CODE = "lumiqtrace.error_code"
ERROR_TYPE = "error.type"
HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")
GRPC_STATUS_KEY = "rpc.grpc.status_code"
CANCELLED_IDS = frozenset({"cancellederror", "generatorexit", "keyboardinterrupt", "abandonedstreamerror", "cancelled"})
RATE_LIMIT_IDS = frozenset(
    {
        "ratelimiterror",
        "ratelimitexceeded",
        "ratelimitexception",
        "throttlingexception",
        "throttlederror",
        "toomanyrequests",
        "toomanyrequestserror",
        "resourceexhausted",
        "resource_exhausted",
        "servicequotaexceededexception",
        "429",
    }
)
# Any error identifier ending so is a rate limit (OpenAIRateLimitError, ModelRateLimitError, ...).
RATE_LIMIT_ID_SUFFIXES = ("ratelimiterror",)
# Provider error codes/types in an error body ('code': 'rate_limit_exceeded', 'type': 'rate_limit_error').
RATE_LIMIT_CODES = frozenset({"rate_limit_exceeded", "rate_limit_error"})
TIMEOUT_MESSAGE = "request timed out."
# Where a status description or exception message turns into a traceback: the error message is cut there.
TRACEBACK_MARKERS = ("Traceback (most recent call last)",)
# gRPC status code -> its canonical name, the error code of a failed gRPC span without a more specific one.
GRPC_STATUS_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}

# --- context --------------------------------------------------------------------------------------------------------

ENVIRONMENT_SPAN_KEYS = (
    "lumiqtrace.environment",
    "deployment.environment.name",
    "deployment.environment",
    "langfuse.environment",
    "gen_ai.environment",
)
ENVIRONMENT_RESOURCE_KEYS = ("deployment.environment.name", "deployment.environment")
USER_KEYS = (
    "lumiqtrace.user_id",
    "user.id",
    "enduser.id",
    "langfuse.user.id",
    "traceloop.association.properties.user_id",
    "traceloop.association.properties.userId",
    "gen_ai.user",
    "llm.user",
    "gen_ai.request.user",
)
SESSION_KEYS = (
    "lumiqtrace.session_id",
    "session.id",
    "gen_ai.conversation.id",
    "langfuse.session.id",
    "traceloop.association.properties.session_id",
    "traceloop.association.properties.sessionId",
    "traceloop.association.properties.conversation_id",
)
ASSOCIATION_PREFIX = "traceloop.association.properties."
ASSOCIATION_CONTEXT_SUFFIXES = frozenset({"user_id", "userId", "session_id", "sessionId", "conversation_id"})
OI_TAGS = "tag.tags"
OI_METADATA = "metadata"
# Keys of a framework's metadata JSON object (OpenInference/LangChain, pydantic-ai) that are the user id.
METADATA_USER_KEYS = ("user_id", "userId")

# Attributes copied into tags under their own name (AI context first, then HTTP/DB/RPC context).
CONTEXT_TAG_KEYS = (
    "gen_ai.agent.name",
    "gen_ai.agent.id",
    "agent.name",
    "gen_ai.tool.name",
    "tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.tool.type",
    "gen_ai.workflow.name",
    "traceloop.workflow.name",
    "traceloop.entity.name",
    "traceloop.span.kind",
    "openinference.span.kind",
    "llm.request.type",
    "gen_ai.prompt.name",
    "traceloop.prompt.key",
    "traceloop.prompt.version",
    "llm.prompt_template.version",
    "gen_ai.response.id",
    "gen_ai.data_source.id",
    "gen_ai.output.type",
    "server.address",
    "url.scheme",
    "url.path",
    "http.route",
    "db.system.name",
    "db.system",
    "db.operation.name",
    "db.namespace",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "messaging.system",
    "messaging.operation.type",
)
HTTP_METHOD_KEYS = ("http.request.method", "http.method")
HTTP_TARGET = "http.target"

# --- content --------------------------------------------------------------------------------------------------------

OT_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
OT_INPUT_MESSAGES = "gen_ai.input.messages"
OT_OUTPUT_MESSAGES = "gen_ai.output.messages"
OT_TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
OT_TOOL_RESULT = "gen_ai.tool.call.result"
OL_PROMPT_PREFIX = "gen_ai.prompt."
OL_COMPLETION_PREFIX = "gen_ai.completion."
OI_INPUT_MESSAGES_PREFIX = "llm.input_messages."
OI_OUTPUT_MESSAGES_PREFIX = "llm.output_messages."
OI_PROMPTS_PREFIX = "llm.prompts."
OI_CHOICES_PREFIX = "llm.choices."
OI_INPUT_VALUE = "input.value"
OI_OUTPUT_VALUE = "output.value"
OL_ENTITY_INPUT = "traceloop.entity.input"
OL_ENTITY_OUTPUT = "traceloop.entity.output"
PROMPT_EVENT = "gen_ai.content.prompt"
PROMPT_EVENT_ATTR = "gen_ai.prompt"
COMPLETION_EVENT = "gen_ai.content.completion"
COMPLETION_EVENT_ATTR = "gen_ai.completion"

# --- finish reason --------------------------------------------------------------------------------------------------

FINISH_REASON_KEYS = (
    "lumiqtrace.finish_reason",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.finish_reason",
    "llm.finish_reason",
    "llm.response.finish_reason",
    "gen_ai.completion.0.finish_reason",
    "anthropic.message.stop_reason",  # the Anthropic SDK's own tracing
)

# --- AI span detection ----------------------------------------------------------------------------------------------

# A span is an AI span when any attribute key starts with one of these (lumiqtrace.* only for non-context keys).
AI_PREFIXES = (
    "gen_ai.",
    "llm.",
    "openinference.",
    "embedding.",
    "reranker.",
    "langfuse.observation.",
    "lmnr.span.",
    "operation.cost",
    "traceloop.span.",
    "traceloop.entity.",
    "traceloop.workflow.",
)


# --- the field table ------------------------------------------------------------------------------------------------


def as_kind(value: Any) -> tuple[str, str] | None:
    """(operation, span_kind) of a kind value (OTel operation, OpenInference kind, ...), or ``None`` if unknown."""
    if not isinstance(value, str) or not value:
        return None
    found = _KIND_BY_SPELLING.get(value)
    return found if found is not None else KIND_TABLE.get(value.strip().lower())


def as_metadata_user_id(value: Any) -> str | None:
    """The user id in a framework's metadata JSON object (``{"user_id": "u-42"}``), or ``None``."""
    if not isinstance(value, str) or "user" not in value:
        return None
    parsed = json_object(value)
    if parsed is None:
        return None
    for key in METADATA_USER_KEYS:
        user = as_str(parsed.get(key))
        if user is not None:
            return user
    return None


def is_present(value: Any) -> bool:
    """Any value: the key being there is the information (tool hints)."""
    return True


# KIND_TABLE under the spellings instrumentations actually send, so most values skip strip().lower().
_KIND_BY_SPELLING = {
    **KIND_TABLE,
    **{key.upper(): value for key, value in KIND_TABLE.items()},
    **{key.capitalize(): value for key, value in KIND_TABLE.items()},
}


@dataclass(frozen=True, slots=True)
class Field:
    """One thing the mapping reads from span attributes: its keys in precedence order and their parser."""

    name: str
    keys: tuple[str, ...]
    parse: Callable[[Any], Any]
    # The field's bit in the set of fields a span has keys of (assigned by the table).
    bit: int = 0


def _fields(*fields: Field) -> dict[str, Field]:
    return {f.name: Field(f.name, f.keys, f.parse, 1 << i) for i, f in enumerate(fields)}


FIELDS = _fields(
    # identity
    Field("explicit_provider", (LQT_PROVIDER,), as_str),
    Field("provider", tuple(k for k in PROVIDER_KEYS if k != LQT_PROVIDER), as_str),
    Field("host", HOST_KEYS, as_str),
    Field("oi_system", (OI_SYSTEM,), as_str),
    Field("explicit_model", (LQT_MODEL,), as_str),
    Field("response_model", RESPONSE_MODEL_KEYS, as_str),
    Field("request_model", REQUEST_MODEL_KEYS, as_str),
    Field("invocation_parameters", (OI_INVOCATION_PARAMETERS,), as_value),
    Field("explicit_operation", (LQT_OPERATION,), as_str),
    Field("explicit_span_kind", (LQT_SPAN_KIND,), as_str),
    Field("raw_operation", (OT_OPERATION,), as_str),
    Field("kind", KIND_KEYS, as_kind),
    Field("tool_hint", TOOL_HINT_KEYS, is_present),
    # usage, cost, timing
    Field("input_tokens", INPUT_TOKEN_KEYS, as_int),
    Field("output_tokens", OUTPUT_TOKEN_KEYS, as_int),
    Field("total_tokens", TOTAL_TOKEN_KEYS, as_int),
    Field("cache_read_tokens", CACHE_READ_KEYS, as_int),
    Field("cache_write_tokens", CACHE_WRITE_KEYS, as_int),
    Field("reasoning_tokens", REASONING_KEYS, as_int),
    Field("cost_usd", COST_KEYS, as_float),
    Field("cost_details", (LANGFUSE_COST_DETAILS,), as_cost_details_total),
    Field("ttft_ms", (LQT_TTFT_MS,), as_float),
    Field("ttft_seconds", TTFT_SECONDS_KEYS, as_float),
    Field("stream", STREAM_KEYS, as_bool),
    Field("request_data", (LOGFIRE_REQUEST_DATA,), as_value),
    Field("logfire_span_type", (LOGFIRE_SPAN_TYPE,), as_str),
    Field("logfire_duration", (LOGFIRE_DURATION,), as_float),
    Field("logfire_msg_template", (LOGFIRE_MSG_TEMPLATE,), as_str),
    Field("finish_reason", FINISH_REASON_KEYS, as_finish_reason),
    # status
    Field("explicit_status", (LQT_STATUS,), as_str),
    Field("explicit_error_code", (LQT_ERROR_CODE,), as_str),
    Field("error_type", (ERROR_TYPE,), as_str),
    Field("http_status", HTTP_STATUS_KEYS, as_int),
    Field("grpc_status", (GRPC_STATUS_KEY,), as_int),
    # context
    Field("environment", ENVIRONMENT_SPAN_KEYS, as_str),
    Field("user_id", USER_KEYS, as_str),
    Field("session_id", SESSION_KEYS, as_str),
    Field("http_method", HTTP_METHOD_KEYS, as_str),
    Field("http_target", (HTTP_TARGET,), as_value),
    Field("oi_tags", (OI_TAGS,), as_value),
    Field("metadata", (OI_METADATA,), as_value),
    Field("metadata_user_id", (OI_METADATA,), as_metadata_user_id),
    # content
    Field("system_instructions", (OT_SYSTEM_INSTRUCTIONS,), as_value),
    Field("input_messages", (OT_INPUT_MESSAGES,), as_value),
    Field("output_messages", (OT_OUTPUT_MESSAGES,), as_value),
    Field("tool_arguments", (OT_TOOL_ARGUMENTS,), as_value),
    Field("tool_result", (OT_TOOL_RESULT,), as_value),
    Field("input_value", (OI_INPUT_VALUE,), as_value),
    Field("output_value", (OI_OUTPUT_VALUE,), as_value),
    Field("entity_input", (OL_ENTITY_INPUT,), as_value),
    Field("entity_output", (OL_ENTITY_OUTPUT,), as_value),
)
# Fields whose presence routes the span to the content extraction.
CONTENT_FIELDS = (
    "system_instructions",
    "input_messages",
    "output_messages",
    "tool_arguments",
    "tool_result",
    "input_value",
    "output_value",
    "entity_input",
    "entity_output",
)


class Family(enum.IntEnum):
    """Prefix families: attributes whose key is a prefix plus a free suffix, collected as (suffix, value)."""

    LQT_TAG = 1  # lumiqtrace.tags.<tag>
    ASSOCIATION = 2  # traceloop.association.properties.<name>
    PROMPT_OL = 3  # gen_ai.prompt.<i>.*                 (OpenLLMetry legacy)
    COMPLETION_OL = 4  # gen_ai.completion.<i>.*
    INPUT_OI = 5  # llm.input_messages.<i>.*            (OpenInference)
    OUTPUT_OI = 6  # llm.output_messages.<i>.*
    PROMPTS_OI = 7  # llm.prompts.<i>.*
    CHOICES_OI = 8  # llm.choices.<i>.*


# Prefix -> family, longest first where one prefix starts another.
PREFIX_FAMILIES: tuple[tuple[str, Family], ...] = (
    (LQT_TAGS_PREFIX, Family.LQT_TAG),
    (ASSOCIATION_PREFIX, Family.ASSOCIATION),
    (OL_PROMPT_PREFIX, Family.PROMPT_OL),
    (OL_COMPLETION_PREFIX, Family.COMPLETION_OL),
    (OI_INPUT_MESSAGES_PREFIX, Family.INPUT_OI),
    (OI_OUTPUT_MESSAGES_PREFIX, Family.OUTPUT_OI),
    (OI_PROMPTS_PREFIX, Family.PROMPTS_OI),
    (OI_CHOICES_PREFIX, Family.CHOICES_OI),
)
# Flattened messages, in the order each side is read (OpenInference before OpenLLMetry, design precedence).
PROMPT_FAMILIES = (Family.INPUT_OI, Family.PROMPTS_OI, Family.PROMPT_OL)
RESPONSE_FAMILIES = (Family.OUTPUT_OI, Family.CHOICES_OI, Family.COMPLETION_OL)


def known_keys() -> frozenset[str]:
    """Every exact attribute key the mapping reads (fields and context tags)."""
    return frozenset({key for f in FIELDS.values() for key in f.keys} | set(CONTEXT_TAG_KEYS))


# Fields the identity is read from: the identity memo is keyed by the values of their keys.
IDENTITY_FIELDS = (
    "explicit_provider",
    "provider",
    "host",
    "oi_system",
    "explicit_model",
    "response_model",
    "request_model",
    "invocation_parameters",
    "explicit_operation",
    "explicit_span_kind",
    "raw_operation",
    "kind",
    "tool_hint",
)
