"""Serves the tool registry as MCP servers on the ingress: /mcp and /mcp/<server>."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import BaseModel, create_model
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from deployments.registry import SERVERS, TOOLS, ToolSpec
from fraudline.errors import ConfigError, FraudlineError, StoreUnavailable

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

    from deployments.toolbox import LocalToolbox

logger = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16
ALL_TOOLS_SERVER = "fraudline"

_INSTRUCTIONS = (
    "Fraudline's fraud-detection tools. The evidence tools (transaction_risk, "
    "identity_verifier, geolocation_checker) judge one payment each and return "
    "signals whose points add up to a 0-100 risk score; the others read cases, "
    "reports, the audit chain and alert delivery."
)


class ToolCaller(Protocol):
    """Runs one method of one tool deployment, by the agent's name for it."""

    async def call(self, deployment: str, method: str, *args: Any) -> Any: ...


class HandleCaller:
    """Calls the tool deployments through Serve handles, on any replica.

    Args:
        handles: Deployment handles by the agent's tool name.
    """

    def __init__(self, handles: Mapping[str, DeploymentHandle]) -> None:
        self._handles = dict(handles)

    async def call(self, deployment: str, method: str, *args: Any) -> Any:
        from ray.exceptions import RayTaskError

        try:
            return await getattr(self._handles[deployment], method).remote(*args)
        except RayTaskError as error:
            # The replica's own error carries the message meant for the caller;
            # the wrapper's text is a remote traceback.
            if isinstance(error.cause, FraudlineError):
                raise error.cause from None
            raise


class LocalCaller:
    """Calls the plain tool objects of a `LocalToolbox` in worker threads.

    Args:
        toolbox: The tools, in this process.
    """

    def __init__(self, toolbox: LocalToolbox) -> None:
        self._tools = toolbox.tools

    async def call(self, deployment: str, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self._tools[deployment], method), *args)


@dataclass
class McpMount:
    """The MCP endpoints, ready to add to the ingress app.

    Attributes:
        routes: One route per server: `/mcp` (every tool) and `/mcp/<server>`.
        managers: The session managers behind the routes, by path.
    """

    routes: list[BaseRoute]
    managers: dict[str, StreamableHTTPSessionManager] = field(default_factory=dict)

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Runs every session manager; enter it once, in the app's lifespan."""
        async with AsyncExitStack() as stack:
            for manager in self.managers.values():
                await stack.enter_async_context(manager.run())
            logger.info("MCP servers ready at %s", ", ".join(self.managers))
            yield


def build_mcp(
    handles: Mapping[str, DeploymentHandle],
    *,
    token: str | None,
    allowed_hosts: list[str],
) -> McpMount:
    """The MCP endpoints over the tool deployments' handles.

    Args:
        handles: Deployment handles by the agent's tool name.
        token: The bearer token clients must send; None accepts every caller.
        allowed_hosts: Host headers accepted, e.g. "127.0.0.1:*" (DNS-rebinding
            protection); origins are allowed for the same hosts.
    """
    return mount_mcp(HandleCaller(handles), token=token, allowed_hosts=allowed_hosts)


def mount_mcp(
    caller: ToolCaller,
    *,
    token: str | None,
    allowed_hosts: list[str],
) -> McpMount:
    """The MCP endpoints over any `ToolCaller`; see `build_mcp`.

    Raises:
        ConfigError: the token is too short or no host is allowed.
    """
    security = transport_security(allowed_hosts)
    secret = _token_bytes(token)
    mount = McpMount(routes=[])
    groups = {server: [spec for spec in TOOLS if spec.server == server] for server in SERVERS}
    groups[ALL_TOOLS_SERVER] = list(TOOLS)
    for server, specs in groups.items():
        path = "/mcp" if server == ALL_TOOLS_SERVER else f"/mcp/{server}"
        manager = _session_manager(_server(server, specs, caller), security)
        mount.managers[path] = manager
        mount.routes.append(Route(path, endpoint=_Endpoint(manager, secret)))
    return mount


def transport_security(allowed_hosts: list[str]) -> TransportSecuritySettings:
    """DNS-rebinding protection that accepts only these hosts and their origins.

    Raises:
        ConfigError: the list is empty.
    """
    if not allowed_hosts:
        raise ConfigError(
            "mcp allowed_hosts is empty; list the Host headers clients use, "
            'e.g. ["127.0.0.1:*", "localhost:*"]'
        )
    origins = [f"{scheme}://{host}" for host in allowed_hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(allowed_hosts),
        allowed_origins=origins,
    )


def _token_bytes(token: str | None) -> bytes | None:
    if token is None:
        logger.warning("MCP endpoints accept calls without a token; set a bearer token")
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"the MCP token has {len(token)} characters; use {MIN_TOKEN_CHARS} or more, "
            "e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return token.encode("utf-8")


def _session_manager(
    server: MCPServer[Any], security: TransportSecuritySettings
) -> StreamableHTTPSessionManager:
    # Stateless with JSON answers: no session lives on one replica, so any
    # ingress replica can answer any request.
    server.streamable_http_app(json_response=True, stateless_http=True, transport_security=security)
    return server.session_manager


def _server(name: str, specs: list[ToolSpec], caller: ToolCaller) -> MCPServer[Any]:
    title = "Fraudline" if name == ALL_TOOLS_SERVER else f"Fraudline {name.replace('_', ' ')}"
    return MCPServer(
        name=name,
        title=title,
        instructions=_INSTRUCTIONS,
        tools=[_tool(spec, caller) for spec in specs],
    )


def _tool(spec: ToolSpec, caller: ToolCaller) -> Tool:
    # The arguments are validated by the tool's own input model (validators,
    # extra fields forbidden), so a bad one comes back as a tool error naming it.
    arguments = create_model(f"{spec.name}_arguments", __base__=(spec.input_model, ArgModelBase))

    async def run(**fields: Any) -> BaseModel:
        params = spec.input_model.model_validate(fields)
        try:
            return await spec.run(caller.call, params)
        except StoreUnavailable as error:
            raise ToolError(f"{spec.name} is unavailable: {error}; try again shortly") from error
        except FraudlineError as error:
            raise ToolError(str(error)) from error

    return Tool(
        fn=run,
        name=spec.name,
        title=spec.title,
        description=spec.description,
        parameters=spec.input_model.model_json_schema(),
        fn_metadata=FuncMetadata(arg_model=arguments, output_model=spec.output_model),
        is_async=True,
        annotations=ToolAnnotations(
            title=spec.title,
            read_only_hint=spec.read_only,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )


class _Endpoint:
    """One MCP server's HTTP endpoint, behind the bearer token."""

    def __init__(self, manager: StreamableHTTPSessionManager, token: bytes | None) -> None:
        self._manager = manager
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._token is not None and not self._authorized(scope):
            refusal = JSONResponse(
                {
                    "error": "invalid_token",
                    "error_description": "send the Fraudline MCP token as "
                    "'Authorization: Bearer <token>'",
                },
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="fraudline-mcp"'},
            )
            await refusal(scope, receive, send)
            return
        await self._manager.handle_request(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        assert self._token is not None
        header = next((value for key, value in scope["headers"] if key == b"authorization"), b"")
        scheme, _, presented = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(presented.strip(), self._token)
