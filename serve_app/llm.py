"""The vLLM deployment through `ray.serve.llm`, and the agent's client for it."""

from __future__ import annotations

import logging
from typing import Any

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
    """Asks the LLM deployment for a JSON answer through its handle."""

    def __init__(self, handle: DeploymentHandle, model_id: str) -> None:
        self._handle = handle.options(stream=True)
        self.model_id = model_id

    async def complete(
        self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int
    ) -> str | None:
        from ray.serve.llm.openai_api_models import (
            ChatCompletionRequest,
            ChatCompletionResponse,
        )

        request = ChatCompletionRequest(
            model=self.model_id,
            messages=messages,
            max_tokens=max_tokens,
            temperature=0.0,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "assessment", "schema": schema, "strict": True},
            },
        )
        async for answer in self._handle.chat.remote(request):
            if isinstance(answer, ChatCompletionResponse):
                return answer.choices[0].message.content
            logger.warning("model answered with an error: %s", str(answer)[:200])
            return None
        return None
