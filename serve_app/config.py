"""The application's configuration: YAML `args` plus secrets from the environment."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from deployments.agent import AgentConfig
from deployments.llm import ModelSettings


class Secrets(BaseSettings):
    """Process settings that never belong in a config file.

    Read from `FRAUDLINE_*` environment variables (a Kubernetes secret in
    production); each overrides the YAML value of the same name.
    """

    model_config = SettingsConfigDict(env_prefix="FRAUDLINE_", extra="ignore")

    database_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    alert_recipients: str | None = Field(
        default=None, description="Comma-separated addresses of the fraud team."
    )
    mcp_token: SecretStr | None = None
    sms_url: str | None = None
    sms_token: SecretStr | None = None
    console_api_key: SecretStr | None = Field(
        default=None, description="Key the console uses for an analyst not signed in."
    )


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    sender: str = "fraudline@localhost"
    recipients: list[str] = Field(default_factory=list)
    delivery_interval_s: float = Field(default=5.0, gt=0)


class ActionSettings(BaseModel):
    """What a block does beyond the word: the hold and the customer's notice."""

    model_config = ConfigDict(extra="forbid")

    hold_hours: float = Field(default=24.0, ge=0, description="0 places no holds.")
    notify_on_review: bool = False
    sms_url: str | None = Field(
        default=None, description="The SMS provider's endpoint; FRAUDLINE_SMS_URL."
    )
    sms_token: str | None = Field(default=None, description="FRAUDLINE_SMS_TOKEN.")


class McpSettings(BaseModel):
    """The MCP endpoints at /mcp and /mcp/<tool>."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(
        default=None, description="Bearer token clients must send; FRAUDLINE_MCP_TOKEN."
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:*", "localhost:*"],
        description="Host headers accepted (DNS-rebinding protection).",
    )


class ConsoleSettings(BaseModel):
    """The analysts' console at /console; it calls the public API like any client."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    api_url: str = Field(
        default="http://127.0.0.1:8000", description="Where the console reaches the API."
    )
    api_key: str | None = Field(default=None, description="FRAUDLINE_CONSOLE_API_KEY.")


class BatchSettings(BaseModel):
    """How the ingress gathers concurrent requests into one call per tool."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(default=64, ge=1, le=1000)
    batch_wait_ms: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        description="How long a batch waits for company once it could start.",
    )
    max_concurrent_batches: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Batches in flight per ingress replica; what arrives meanwhile "
        "waits and goes out together in the next one.",
    )


class AppConfig(BaseModel):
    """Everything `build_app` needs; the YAML `args:` block validates into this."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = "sqlite:///var/fraudline.db"
    agent: AgentConfig = Field(default_factory=AgentConfig)
    batching: BatchSettings = Field(default_factory=BatchSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    actions: ActionSettings = Field(default_factory=ActionSettings)
    llm: ModelSettings | None = None
    mcp: McpSettings = Field(default_factory=McpSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    auth: dict[str, Any] = Field(
        default_factory=dict,
        description="API keys and roles (serve_app.auth.AuthConfig); keys from "
        "FRAUDLINE_API_KEYS. `mode: disabled` only for local development.",
    )
    tools: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Constructor keyword arguments per tool deployment name.",
    )
    seed_demo: bool = Field(
        default=False, description="Seed the demo customers' history at start."
    )

    @classmethod
    def from_args(cls, args: dict[str, Any], secrets: Secrets | None = None) -> AppConfig:
        """Validates YAML args, then lets the environment's secrets override them."""
        config = cls.model_validate(args)
        secrets = secrets or Secrets()
        if secrets.database_url:
            config.database_url = secrets.database_url
        alerts = config.alerts
        if secrets.smtp_host:
            alerts.smtp_host = secrets.smtp_host
        if secrets.smtp_port:
            alerts.smtp_port = secrets.smtp_port
        if secrets.smtp_username:
            alerts.smtp_username = secrets.smtp_username
        if secrets.smtp_password:
            alerts.smtp_password = secrets.smtp_password.get_secret_value()
        if secrets.sms_url:
            config.actions.sms_url = secrets.sms_url
        if secrets.sms_token:
            config.actions.sms_token = secrets.sms_token.get_secret_value()
        if secrets.console_api_key:
            config.console.api_key = secrets.console_api_key.get_secret_value()
        if secrets.mcp_token:
            config.mcp.token = secrets.mcp_token.get_secret_value()
        if secrets.alert_recipients:
            alerts.recipients = [
                address.strip()
                for address in secrets.alert_recipients.split(",")
                if address.strip()
            ]
        return config
