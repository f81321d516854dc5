"""The vLLM deployment through `ray.serve.llm`, and the agent's client for it."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from deployments.llm import ModelSettings

logger = logging.getLogger(__name__)


def llm_config(settings: ModelSettings) -> Any:
    """The `LLMConfig` for one model; the same code path for CPU and GPU."""
    from ray.serve.llm import LLMConfig

    options: dict[str, Any] = {
        "model_loading_config": {
            "model_id": settings.model_id,
            "model_source": settings.model_source,
        },
        "engine_kwargs": settings.engine_kwargs,
        "deployment_config": settings.deployment_config,
        "log_engine_metrics": True,
    }
    if settings.accelerator_type:
        options["accelerator_type"] = settings.accelerator_type
    if settings.accelerator_config:
        options["accelerator_config"] = settings.accelerator_config
    if settings.placement_group_config:
        options["placement_group_config"] = settings.placement_group_config
    if settings.runtime_env:
        options["runtime_env"] = settings.runtime_env
    return LLMConfig(**options)


def build_llm_app(settings: ModelSettings) -> Application:
    from ray.serve.llm import build_llm_deployment

    return build_llm_deployment(llm_config(settings), name_prefix="LLM:")


class HandleExplainer:
    """Asks the LLM deployment through its handle, streaming when told to."""

    def __init__(
        self, handle: DeploymentHandle, model_id: str, on_call: Any = None
    ) -> None:
        self._handle = handle.options(stream=True)
        self.model_id = model_id
        self._on_call = on_call

    async def complete(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None,
        max_tokens: int,
        on_delta: Callable[[str, str], None] | None = None,
    ) -> str | None:
        from ray.serve.llm.openai_api_models import ChatCompletionRequest

        options: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": on_delta is not None,
            # Never an empty answer, even from a model whose first word is "stop".
            "min_tokens": 1,
        }
        if schema is not None:
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "assessment", "schema": schema, "strict": True},
            }
        if on_delta is not None:
            options["stream_options"] = {"include_usage": True}
        request = ChatCompletionRequest(**options)
        if on_delta is None:
            return await self._whole(request)
        return await self._streamed(request, on_delta)

    async def choose_tools(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int
    ) -> list[tuple[str, str]]:
        """The function calls the model makes, as (name, arguments JSON)."""
        from ray.serve.llm.openai_api_models import ChatCompletionRequest

        # "required" makes vLLM constrain the output to the tools' strict schemas,
        # which is what keeps a weak model's arguments well formed.
        request = ChatCompletionRequest(
            model=self.model_id,
            messages=messages,
            tools=tools,
            tool_choice="required",
            max_tokens=max_tokens,
            temperature=0.0,
        )
        async for answer in self._handle.chat.remote(request):
            if not _is_completion(answer):
                logger.warning("tool choice answered with an error: %s", str(answer)[:200])
                return []
            calls = answer.choices[0].message.tool_calls or []
            return [(call.function.name, call.function.arguments or "{}") for call in calls]
        return []

    async def _whole(self, request: Any) -> str | None:
        async for answer in self._handle.chat.remote(request):
            if _is_completion(answer):
                usage = answer.usage
                self._record("ok", usage.prompt_tokens if usage else 0,
                             usage.completion_tokens if usage else 0)
                return answer.choices[0].message.content
            logger.warning("model answered with an error: %s", str(answer)[:200])
        self._record("error", 0, 0)
        return None

    async def _streamed(
        self, request: Any, on_delta: Callable[[str, str], None]
    ) -> str | None:
        answer: list[str] = []
        usage: dict[str, int] = {}
        async for lines in self._handle.chat.remote(request):
            for chunk in _sse_chunks(lines):
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices", []):
                    delta = choice.get("delta") or {}
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if reasoning:
                        on_delta("reasoning", reasoning)
                    if delta.get("content"):
                        answer.append(delta["content"])
                        on_delta("answer", delta["content"])
        self._record("ok", usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        return "".join(answer) or None

    def _record(self, status: str, prompt_tokens: int, completion_tokens: int) -> None:
        if self._on_call is not None:
            self._on_call(status, prompt_tokens, completion_tokens)


class HandleChat:
    """Forwards OpenAI chat requests from HTTP clients to the LLM deployment."""

    def __init__(self, handle: DeploymentHandle, model_id: str) -> None:
        self._handle = handle.options(stream=True)
        self.model_id = model_id

    async def __call__(self, body: dict[str, Any]) -> Response:
        from ray.serve.llm.openai_api_models import ChatCompletionRequest

        try:
            request = ChatCompletionRequest(**dict(body, model=self.model_id))
        except ValueError as error:
            return JSONResponse(status_code=422, content={"detail": str(error)[:500]})
        if request.stream:
            return StreamingResponse(self._stream(request), media_type="text/event-stream")
        async for answer in self._handle.chat.remote(request):
            return JSONResponse(
                status_code=getattr(answer, "code", None) or 200,
                content=answer.model_dump(mode="json"),
            )
        return JSONResponse(status_code=503, content={"detail": "the model gave no answer"})

    async def _stream(self, request: Any) -> AsyncIterator[str]:
        async for lines in self._handle.chat.remote(request):
            for line in lines if isinstance(lines, list) else [lines]:
                yield line if isinstance(line, str) else f"data: {json.dumps(line)}\n\n"


def _is_completion(answer: Any) -> bool:
    # The engine answers with its own response class, not the public subclass in
    # ray.serve.llm.openai_api_models, so the type is told by its fields.
    return getattr(answer, "object", None) == "chat.completion" and bool(
        getattr(answer, "choices", None)
    )


def _sse_chunks(lines: Any) -> list[dict[str, Any]]:
    """The JSON chunks in a batch of `data: {...}` lines from the LLM server."""
    chunks = []
    for line in lines if isinstance(lines, list) else [lines]:
        if not isinstance(line, str):
            continue
        for part in line.split("\n"):
            part = part.strip()
            if part.startswith("data:") and part != "data: [DONE]":
                try:
                    chunks.append(json.loads(part[5:]))
                except ValueError:
                    continue
    return chunks
