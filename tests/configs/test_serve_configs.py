"""Both serve configs validate for Serve and build the whole graph without a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {name: ROOT / "configs" / f"{name}.yaml" for name in ("local", "production")}
ENV_SECRETS = {
    "FRAUDLINE_SMTP_HOST": "smtp.test.invalid",
    "FRAUDLINE_SMTP_PORT": "587",
    "FRAUDLINE_SMTP_USERNAME": "alerts-user",
    "FRAUDLINE_SMTP_PASSWORD": "s3cret-from-env",
    "FRAUDLINE_ALERT_RECIPIENTS": "a@test.invalid, b@test.invalid",
    # Production refuses to start without keys; this hash is of a throwaway key.
    "FRAUDLINE_API_KEYS": "ci-test:admin:hmac-sha256:"
    "cfa69f9f779171be2b57f657dde773bba0d990d85a6a0ac9e812b58b3aa1ff1f",
}


class _NoClusterContext:
    """What `ray.get_runtime_context()` tells a driver that has no runtime env."""

    runtime_env: dict[str, Any] = {}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load(CONFIGS[name].read_text())


def app_section(name: str) -> dict[str, Any]:
    (app,) = load(name)["applications"]
    return app


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Each config's application, finalised into deployments as `serve deploy` would.

    `ray.serve.llm` asks `ray.get_runtime_context()` for the driver's runtime env
    while binding, which would start a local Ray; a driver without one sees {}.
    """
    ray = pytest.importorskip("ray")
    from ray.serve._private.build_app import build_app as finalise

    from serve_app.app import build_app

    database_url = f"sqlite:///{tmp_path_factory.mktemp('configs')}/fraudline.db"
    apps = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray, "get_runtime_context", _NoClusterContext)
        patch.setenv("FRAUDLINE_DATABASE_URL", database_url)
        for key, value in ENV_SECRETS.items():
            patch.setenv(key, value)
        for name in CONFIGS:
            app = build_app(app_section(name)["args"])
            apps[name] = finalise(app, name="fraudline")
        started = ray.is_initialized()
    yield {"apps": apps, "database_url": database_url, "ray_started": started}


def deployment(built_app: Any, prefix: str) -> Any:
    (found,) = [d for d in built_app.deployments if d.name.startswith(prefix)]
    return found


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_is_a_valid_serve_deploy_schema(name: str) -> None:
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(load(name))

    assert [app.import_path for app in schema.applications] == ["serve_app.app:build_app"]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_application_builds_without_starting_ray(built: dict[str, Any], name: str) -> None:
    built_app = built["apps"][name]
    configured = {d["name"] for d in app_section(name)["deployments"]}
    names = {d.name for d in built_app.deployments}

    assert built["ray_started"] is False
    assert built_app.ingress_deployment_name == "Agent"
    # Serve rejects a config naming a deployment the graph lacks; catch it here.
    assert configured <= names
    assert names - configured == {deployment(built_app, "LLM:").name}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_deployment_states_autoscaling_and_resources(name: str) -> None:
    app = app_section(name)
    llm = app["args"]["llm"]["deployment_config"]

    for options in [*app["deployments"], llm]:
        assert options["autoscaling_config"]["max_replicas"] >= 1, options
        assert options["ray_actor_options"]["num_cpus"] > 0, options


def test_production_runs_r1_32b_over_two_nodes() -> None:
    llm = app_section("production")["args"]["llm"]
    kwargs = llm["engine_kwargs"]

    assert llm["model_source"] == "/mnt/models/DeepSeek-R1-Distill-Qwen-32B"
    assert (kwargs["tensor_parallel_size"], kwargs["pipeline_parallel_size"]) == (8, 2)
    assert kwargs["reasoning_parser"] == "deepseek_r1"
    assert kwargs["max_model_len"] == 32768
    assert kwargs["gpu_memory_utilization"] == 0.90
    assert llm["placement_group_config"]["strategy"] == "PACK"


def test_production_llm_reserves_sixteen_gpu_bundles(built: dict[str, Any]) -> None:
    llm = deployment(built["apps"]["production"], "LLM:")
    bundles = llm._replica_config.placement_group_bundles

    assert sum(bundle.get("GPU", 0) for bundle in bundles) == 16
    assert llm._replica_config.placement_group_strategy == "PACK"


def test_local_llm_runs_on_the_cpu(built: dict[str, Any]) -> None:
    llm = deployment(built["apps"]["local"], "LLM:")
    bundles = llm._replica_config.placement_group_bundles or []

    assert sum(bundle.get("GPU", 0) for bundle in bundles) == 0


def test_production_logs_json() -> None:
    assert load("production")["logging_config"]["encoding"] == "JSON"


def test_production_file_holds_no_database_url_or_smtp_settings() -> None:
    args = app_section("production")["args"]
    text = CONFIGS["production"].read_text()

    assert "database_url" not in args
    assert {"smtp_host", "smtp_port", "smtp_username", "smtp_password"}.isdisjoint(args["alerts"])
    assert "postgresql://" not in text and "postgresql+psycopg://" not in text


def test_production_graph_takes_secrets_from_the_environment(built: dict[str, Any]) -> None:
    built_app = built["apps"]["production"]
    agent_config = deployment(built_app, "Agent").init_args[0]
    (logger_url,) = deployment(built_app, "FraudLogger").init_args
    alerts = deployment(built_app, "EmailAlerts").init_kwargs

    assert agent_config["database_url"] == built["database_url"]
    assert logger_url == built["database_url"]
    assert (alerts["smtp_host"], alerts["smtp_port"]) == ("smtp.test.invalid", 587)
    assert alerts["smtp_password"] == "s3cret-from-env"
    assert alerts["smtp_starttls"] is True
    assert alerts["recipients"] == ["a@test.invalid", "b@test.invalid"]
