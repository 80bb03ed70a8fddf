# SPDX-License-Identifier: Apache-2.0
"""Drive one real LLM framework (or a stacked pair) against ``fake_providers.py`` and record its finished spans.

Run as ``python drive_frameworks.py <framework> [--record]``. Every framework runs the same scenarios: ``chat``,
``stream`` (a streamed chat), ``tool`` (a tool call or agent run, two provider calls), ``429``, ``500`` (and
``529`` for Anthropic). The spans each scenario finished are printed on stdout as JSON,
``{scenario: [span fixture, ...]}`` in the corpus format of ``corpus.py``; with ``--record`` each scenario is also
written to ``corpus/fw-<framework>-<scenario>.json`` with ``expected`` = today's ``map_span`` output (not yet
reviewed). Each framework runs in its own process because they patch the same clients.

Spans go to an in-process ``InMemorySpanExporter`` and nowhere else: logfire is configured with no token and
``send_to_logfire=False``; openai-agents' own trace export is replaced by OpenInference's (exclusive) processor.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions, map_span

sys.path.insert(0, str(Path(__file__).parent))
from corpus import CORPUS_DIR, Case, span_from_fixture, span_to_fixture
from fake_providers import FakeProviderServer

USER_ID = "u-42"
SYSTEM = "Be brief."
QUESTION = "What is the weather in Paris?"
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-5"

# The distributions each framework's source line names, with their installed versions.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "pydantic-ai": ("pydantic-ai-slim", "openai"),
    "openai-agents": ("openai-agents", "openinference-instrumentation-openai-agents", "openai"),
    "langchain": ("langchain-openai", "langchain-core", "openinference-instrumentation-langchain", "openai"),
    "anthropic-sdk": ("anthropic",),
    "openinference-anthropic": ("anthropic", "openinference-instrumentation-anthropic"),
    "openllmetry-anthropic": ("anthropic", "opentelemetry-instrumentation-anthropic"),
    "logfire-openai": ("logfire", "openai"),
    "pydantic-ai+logfire": ("pydantic-ai-slim", "logfire", "openai"),
    "openai-agents+openinference-openai": (
        "openai-agents",
        "openinference-instrumentation-openai-agents",
        "openinference-instrumentation-openai",
        "openai",
    ),
    "langchain+openinference-openai": (
        "langchain-openai",
        "openinference-instrumentation-langchain",
        "openinference-instrumentation-openai",
        "openai",
    ),
    "openinference-anthropic+anthropic-sdk": ("anthropic", "openinference-instrumentation-anthropic"),
    "openllmetry-anthropic+anthropic-sdk": ("anthropic", "opentelemetry-instrumentation-anthropic"),
}
# Runs where the Anthropic SDK traces itself too (its default); elsewhere ANTHROPIC_OPEN_TELEMETRY=false.
ANTHROPIC_SELF_TRACING = {
    "anthropic-sdk",
    "openinference-anthropic+anthropic-sdk",
    "openllmetry-anthropic+anthropic-sdk",
}

Scenario = Callable[[], Any]
# One event loop for every async scenario: the async clients bind their connection pools to the loop they first ran
# on, so a fresh loop per scenario (``run_sync``, ``asyncio.run``) breaks the second one.
LOOP = asyncio.new_event_loop()


def _on_loop(coroutine_function: Callable[[], Any]) -> Scenario:
    return lambda: LOOP.run_until_complete(coroutine_function())


def _source(framework: str) -> str:
    parts = []
    for dist in DISTRIBUTIONS[framework]:
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} (not installed)")
    return "recorded: " + " + ".join(parts)


def _expect_error(run: Scenario) -> Scenario:
    def scenario() -> None:
        try:
            run()
        except Exception as exc:  # the scripted 429/500/529 surfaces as the framework's own exception
            print(f"expected error: {type(exc).__name__}", file=sys.stderr)
        else:
            raise AssertionError("the fake provider's error did not surface")

    return scenario


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


# --- OpenAI-based frameworks -------------------------------------------------------------------------------------


def _async_openai(fake: FakeProviderServer) -> Any:
    import openai

    return openai.AsyncOpenAI(api_key="sk-golden-test", base_url=fake.openai_base_url, max_retries=0)


def _pydantic_ai(fake: FakeProviderServer, provider: TracerProvider, *, logfire_too: bool) -> dict[str, Scenario]:
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    client = _async_openai(fake)
    if logfire_too:
        import logfire

        logfire.instrument_openai(client)
    model = OpenAIChatModel(OPENAI_MODEL, provider=OpenAIProvider(openai_client=client))
    Agent.instrument_all(InstrumentationSettings(tracer_provider=provider))
    metadata_ = {"user_id": USER_ID}
    agent = Agent(model, system_prompt=SYSTEM, metadata=metadata_)
    tool_agent = Agent(model, system_prompt=SYSTEM, tools=[get_weather], metadata=metadata_)

    async def stream() -> None:
        async with agent.run_stream(QUESTION) as result:
            async for _ in result.stream_text():
                pass

    return {
        "chat": _on_loop(lambda: agent.run(QUESTION)),
        "stream": _on_loop(stream),
        "tool": _on_loop(lambda: tool_agent.run(QUESTION)),
        "429": _expect_error(_on_loop(lambda: agent.run(QUESTION + " [429]"))),
        "500": _expect_error(_on_loop(lambda: agent.run(QUESTION + " [500]"))),
    }


def _openai_agents(fake: FakeProviderServer, provider: TracerProvider, *, openai_too: bool) -> dict[str, Scenario]:
    import agents
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)  # exclusive: no export to OpenAI
    if openai_too:
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
    agents.set_default_openai_client(_async_openai(fake), use_for_tracing=False)
    weather = agents.function_tool(get_weather)
    assistant = agents.Agent(name="Assistant", instructions=SYSTEM, model=OPENAI_MODEL)
    forecaster = agents.Agent(name="Forecaster", instructions=SYSTEM, model=OPENAI_MODEL, tools=[weather])
    triage = agents.Agent(name="Triage", instructions=SYSTEM, model=OPENAI_MODEL, handoffs=[forecaster])

    async def stream() -> None:
        result = agents.Runner.run_streamed(assistant, QUESTION)
        async for _ in result.stream_events():
            pass

    return {
        "chat": _on_loop(lambda: agents.Runner.run(assistant, QUESTION)),
        "stream": _on_loop(stream),
        # a handoff, then a tool call, then the answer: three provider calls
        "tool": _on_loop(lambda: agents.Runner.run(triage, QUESTION)),
        "429": _expect_error(_on_loop(lambda: agents.Runner.run(assistant, QUESTION + " [429]"))),
        "500": _expect_error(_on_loop(lambda: agents.Runner.run(assistant, QUESTION + " [500]"))),
    }


def _langchain(fake: FakeProviderServer, provider: TracerProvider, *, openai_too: bool) -> dict[str, Scenario]:
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from openinference.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=provider)
    if openai_too:
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
    chat = ChatOpenAI(model=OPENAI_MODEL, base_url=fake.openai_base_url, api_key="sk-golden-test", max_retries=0)  # type: ignore[call-arg]
    streaming = ChatOpenAI(
        model=OPENAI_MODEL,
        base_url=fake.openai_base_url,
        api_key="sk-golden-test",
        max_retries=0,
        stream_usage=True,
    )  # type: ignore[call-arg]
    config: Any = {"metadata": {"user_id": USER_ID}}

    def messages(text: str) -> list[Any]:
        return [SystemMessage(SYSTEM), HumanMessage(text)]

    def stream() -> None:
        for _ in streaming.stream(messages(QUESTION), config=config):
            pass

    def tool_run() -> None:
        weather = tool(get_weather)
        bound = chat.bind_tools([weather])
        history = messages(QUESTION)
        first = bound.invoke(history, config=config)
        history.append(first)
        for call in first.tool_calls:
            history.append(ToolMessage(weather.invoke(call["args"]), tool_call_id=call["id"]))
        bound.invoke(history, config=config)

    return {
        "chat": lambda: chat.invoke(messages(QUESTION), config=config),
        "stream": stream,
        "tool": tool_run,
        "429": _expect_error(lambda: chat.invoke(messages(QUESTION + " [429]"), config=config)),
        "500": _expect_error(lambda: chat.invoke(messages(QUESTION + " [500]"), config=config)),
    }


def _logfire_openai(fake: FakeProviderServer) -> dict[str, Scenario]:
    import logfire
    import openai

    client = openai.OpenAI(api_key="sk-golden-test", base_url=fake.openai_base_url, max_retries=0)
    logfire.instrument_openai(client)

    def ask(text: str) -> list[Any]:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]

    def stream() -> None:
        for _ in client.chat.completions.create(
            model=OPENAI_MODEL, messages=ask(QUESTION), stream=True, stream_options={"include_usage": True}
        ):
            pass

    def tool_run() -> None:
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ]
        history: list[Any] = ask(QUESTION)
        first = client.chat.completions.create(model=OPENAI_MODEL, messages=history, tools=tools)
        message = first.choices[0].message
        history.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls or ():
            history.append({"role": "tool", "tool_call_id": call.id, "content": get_weather("Paris")})
        client.chat.completions.create(model=OPENAI_MODEL, messages=history, tools=tools)

    return {
        "chat": lambda: client.chat.completions.create(model=OPENAI_MODEL, messages=ask(QUESTION)),
        "stream": stream,
        "tool": tool_run,
        "429": _expect_error(lambda: client.chat.completions.create(model=OPENAI_MODEL, messages=ask("[429]"))),
        "500": _expect_error(lambda: client.chat.completions.create(model=OPENAI_MODEL, messages=ask("[500]"))),
    }


# --- Anthropic ---------------------------------------------------------------------------------------------------


def _anthropic(fake: FakeProviderServer, provider: TracerProvider, instrumentation: str | None) -> dict[str, Scenario]:
    import anthropic

    if instrumentation == "openinference":
        from openinference.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=provider)
    elif instrumentation == "openllmetry":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as OLAnthropicInstrumentor

        OLAnthropicInstrumentor().instrument(tracer_provider=provider)
    client = anthropic.Anthropic(api_key="sk-ant-golden", base_url=fake.anthropic_base_url, max_retries=0)

    def ask(text: str, **kwargs: Any) -> Any:
        return client.messages.create(
            model=ANTHROPIC_MODEL,
            max_tokens=256,
            system=SYSTEM,
            messages=[{"role": "user", "content": text}],
            metadata={"user_id": USER_ID},
            **kwargs,
        )

    def stream() -> None:
        for _ in ask(QUESTION, stream=True):
            pass

    def tool_run() -> None:
        tools: Any = [
            {
                "name": "get_weather",
                "description": "The weather in a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ]
        history: list[Any] = [{"role": "user", "content": QUESTION}]
        first = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=history, tools=tools)
        history.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
        results = [
            {"type": "tool_result", "tool_use_id": b.id, "content": get_weather(**b.input)}
            for b in first.content
            if b.type == "tool_use"
        ]
        history.append({"role": "user", "content": results})
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=history, tools=tools)

    return {
        "chat": lambda: ask(QUESTION),
        "stream": stream,
        "tool": tool_run,
        "429": _expect_error(lambda: ask(QUESTION + " [429]")),
        "500": _expect_error(lambda: ask(QUESTION + " [500]")),
        "529": _expect_error(lambda: ask(QUESTION + " [529]")),
    }


# --- running and recording ---------------------------------------------------------------------------------------


def _scenarios(framework: str, fake: FakeProviderServer, provider: TracerProvider) -> dict[str, Scenario]:
    if framework == "pydantic-ai":
        return _pydantic_ai(fake, provider, logfire_too=False)
    if framework == "pydantic-ai+logfire":
        return _pydantic_ai(fake, provider, logfire_too=True)
    if framework == "openai-agents":
        return _openai_agents(fake, provider, openai_too=False)
    if framework == "openai-agents+openinference-openai":
        return _openai_agents(fake, provider, openai_too=True)
    if framework == "langchain":
        return _langchain(fake, provider, openai_too=False)
    if framework == "langchain+openinference-openai":
        return _langchain(fake, provider, openai_too=True)
    if framework == "logfire-openai":
        return _logfire_openai(fake)
    if framework == "anthropic-sdk":
        return _anthropic(fake, provider, None)
    if framework.startswith("openinference-anthropic"):
        return _anthropic(fake, provider, "openinference")
    if framework.startswith("openllmetry-anthropic"):
        return _anthropic(fake, provider, "openllmetry")
    raise SystemExit(f"unknown framework {framework!r}; one of {sorted(DISTRIBUTIONS)}")


def _tracer_provider(framework: str, memory: InMemorySpanExporter) -> TracerProvider:
    """The global tracer provider (some frameworks only use the global one), exporting to ``memory`` only."""
    if "logfire" in framework:
        import logfire

        logfire.configure(
            send_to_logfire=False,
            token=None,
            console=False,
            metrics=False,
            service_name=f"golden-{framework}",
            additional_span_processors=[SimpleSpanProcessor(memory)],
            inspect_arguments=False,
        )
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider) or hasattr(provider, "force_flush")
        return provider  # type: ignore[return-value]
    provider = TracerProvider(resource=Resource({"service.name": f"golden-{framework}"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return provider


def main(framework: str, *, record: bool) -> None:
    if framework not in DISTRIBUTIONS:
        raise SystemExit(f"unknown framework {framework!r}; one of {sorted(DISTRIBUTIONS)}")
    if framework not in ANTHROPIC_SELF_TRACING:
        os.environ["ANTHROPIC_OPEN_TELEMETRY"] = "false"
    memory = InMemorySpanExporter()
    provider = _tracer_provider(framework, memory)
    recorded: dict[str, list[dict[str, Any]]] = {}
    with FakeProviderServer() as fake:
        for name, run in _scenarios(framework, fake, provider).items():
            run()
            provider.force_flush()
            recorded[name] = [span_to_fixture(span) for span in memory.get_finished_spans()]
            memory.clear()
    if record:
        source = _source(framework)
        options = MappingOptions()
        for name, fixtures in recorded.items():
            events = [map_span(span_from_fixture(f), options) for f in fixtures]
            Case(
                path=CORPUS_DIR / f"fw-{framework}-{name}.json",
                description=f"{framework}, scenario {name!r}, against tests/golden/fake_providers.py "
                "(expected not yet reviewed for issue 12)",
                source=source,
                options={},
                spans=fixtures,
                expected=events,
            ).save()
    json.dump(recorded, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], record="--record" in sys.argv[2:])
