"""The RayService manifest: valid for the CRD, in step with the serve config, wired to secrets."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from serve_app.auth import KEYS_ENV
from serve_app.config import Secrets

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "kuberay" / "rayservice.yaml"
SECRETS = ROOT / "kuberay" / "secrets.example.yaml"
FSX = ROOT / "kuberay" / "fsx-models.yaml"
SERVE_CONFIG = ROOT / "configs" / "production.yaml"
# Shared with the other checkouts, never copied into the project.
CRD = ROOT.parent / "shared" / "crds" / "ray.io_rayservices.yaml"

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_render_module() -> Any:
    spec = importlib.util.spec_from_file_location("kuberay_render", ROOT / "kuberay" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


@pytest.fixture(scope="module")
def cluster(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["rayClusterConfig"]


@pytest.fixture(scope="module")
def groups(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {group["groupName"]: group for group in cluster["workerGroupSpecs"]}


@pytest.fixture(scope="module")
def example_secrets() -> dict[str, dict[str, str]]:
    return {
        doc["metadata"]["name"]: doc["stringData"]
        for doc in yaml.safe_load_all(SECRETS.read_text())
    }


def closed(schema: Any) -> Any:
    """The schema with unknown fields rejected, as `kubectl apply` with strict validation does.

    A CRD's structural schema lets the API server prune unknown fields silently, so a
    misspelt key would pass plain JSON-schema validation and then vanish in the cluster.
    """
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def rayservice_schema() -> dict[str, Any]:
    crd = yaml.load(CRD.read_text(), Loader=Loader)
    (v1,) = [version for version in crd["spec"]["versions"] if version["name"] == "v1"]
    return closed(v1["schema"]["openAPIV3Schema"])


def containers(pod_group: dict[str, Any]) -> list[dict[str, Any]]:
    return pod_group["template"]["spec"]["containers"]


def test_serve_config_v2_is_production_yaml(manifest: dict[str, Any]) -> None:
    embedded = yaml.safe_load(manifest["spec"]["serveConfigV2"])

    assert embedded == yaml.safe_load(SERVE_CONFIG.read_text())


def test_render_leaves_an_up_to_date_manifest_unchanged() -> None:
    render = load_render_module()
    current = MANIFEST.read_text()

    assert render.render(current, SERVE_CONFIG.read_text()) == current
    assert render.main(["--check"]) == 0


def test_render_replaces_a_stale_serve_config_block() -> None:
    render = load_render_module()
    stale = "spec:\n  serveConfigV2: |\n    old: 1\n\n    older: 2\n  rayClusterConfig: {}\n"

    fresh = render.render(stale, "applications: []\n")

    assert fresh == "spec:\n  serveConfigV2: |\n    applications: []\n  rayClusterConfig: {}\n"


@pytest.mark.skipif(not CRD.exists(), reason=f"RayService CRD not found at {CRD}")
def test_manifest_is_valid_for_the_rayservice_crd(manifest: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(rayservice_schema())

    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))

    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


@pytest.mark.skipif(not CRD.exists(), reason=f"RayService CRD not found at {CRD}")
def test_crd_check_rejects_a_misspelt_field(manifest: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    broken = copy.deepcopy(manifest)
    broken["spec"]["rayClusterConfig"]["enableInTreeAutoscalling"] = True

    errors = list(jsonschema.Draft7Validator(rayservice_schema()).iter_errors(broken))

    assert any("enableInTreeAutoscalling" in error.message for error in errors)


def test_head_group_has_no_gpus(cluster: dict[str, Any]) -> None:
    head = cluster["headGroupSpec"]
    (container,) = containers(head)

    assert head["rayStartParams"]["num-gpus"] == "0"
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_cpu_group_serves_agent_and_tools_without_gpus(groups: dict[str, Any]) -> None:
    cpu = groups["cpu-agent-tools"]
    (container,) = containers(cpu)

    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert cpu["minReplicas"] >= 1 and cpu["maxReplicas"] > cpu["minReplicas"]


def test_gpu_group_is_two_p4d_nodes_with_efa_shm_and_fsx(groups: dict[str, Any]) -> None:
    gpu = groups["gpu-p4d"]
    pod = gpu["template"]["spec"]
    (container,) = containers(gpu)
    limits = container["resources"]["limits"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}

    assert gpu["maxReplicas"] == 2
    assert pod["nodeSelector"]["node.kubernetes.io/instance-type"] == "p4d.24xlarge"
    assert (limits["nvidia.com/gpu"], limits["vpc.amazonaws.com/efa"]) == ("8", "4")
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert mounts["dshm"] == "/dev/shm"
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "fraudline-models"


def test_model_weights_are_read_from_the_fsx_mount(groups: dict[str, Any]) -> None:
    (container,) = containers(groups["gpu-p4d"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "models")
    llm = yaml.safe_load(SERVE_CONFIG.read_text())["applications"][0]["args"]["llm"]
    claims = [doc for doc in yaml.safe_load_all(FSX.read_text())]

    assert llm["model_source"].startswith(mount["mountPath"] + "/")
    assert mount["readOnly"] is True
    assert claims[0]["spec"]["csi"]["driver"] == "fsx.csi.aws.com"
    assert claims[1]["metadata"]["name"] == "fraudline-models"


def test_gpu_group_offers_the_engine_all_sixteen_gpus(groups: dict[str, Any]) -> None:
    (container,) = containers(groups["gpu-p4d"])
    engine = yaml.safe_load(SERVE_CONFIG.read_text())["applications"][0]["args"]["llm"]
    kwargs = engine["engine_kwargs"]
    gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])

    assert kwargs["tensor_parallel_size"] * kwargs["pipeline_parallel_size"] == 16
    assert gpus * groups["gpu-p4d"]["maxReplicas"] == 16
    # One pipeline stage per node: a tensor-parallel group never crosses nodes.
    assert kwargs["tensor_parallel_size"] == gpus


def test_ray_autoscaler_is_on(cluster: dict[str, Any]) -> None:
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["version"] == "v2"


def test_token_auth_reads_a_secret_with_an_auth_token_key(
    cluster: dict[str, Any], example_secrets: dict[str, dict[str, str]]
) -> None:
    auth = cluster["authOptions"]

    assert auth["mode"] == "token"
    assert "auth_token" in example_secrets[auth["secretName"]]


def test_every_ray_container_gets_database_smtp_and_key_secrets(
    cluster: dict[str, Any], groups: dict[str, Any], example_secrets: dict[str, Any]
) -> None:
    pod_groups = [cluster["headGroupSpec"], *groups.values()]
    secret_env = {
        name: set(keys)
        for name, keys in example_secrets.items()
        if name != cluster["authOptions"]["secretName"]
    }
    wanted = {f"FRAUDLINE_{field.upper()}" for field in Secrets.model_fields}
    wanted.add(KEYS_ENV)  # read by the ingress's authenticator, not by Secrets

    for group in pod_groups:
        for container in containers(group):
            names = {source["secretRef"]["name"] for source in container["envFrom"]}
            assert names == {"fraudline-database", "fraudline-smtp", "fraudline-api-keys"}
    assert set().union(*secret_env.values()) == wanted


def test_no_secret_value_is_written_in_the_manifest() -> None:
    text = MANIFEST.read_text().lower()

    assert "postgresql://" not in text and "postgresql+psycopg://" not in text
    assert "smtp_password:" not in text and "smtp_host:" not in text
    assert "auth_token:" not in text
