"""infra/ against what it runs and what the project reads, with what runs here (no container
engine, no cluster): the compose file through docker-compose's own validation; the
Kubernetes manifests against the Kubernetes OpenAPI schemas (kubernetes-validate, offline)
and KubeRay's v1 fields; every command and option against the installed CLIs; every
environment variable against the code that reads it; the image's pins against
pyproject.toml; the build context; and the sandbox under exactly the capabilities the
manifests grant."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
VENV_BIN = Path(sys.executable).parent
#: The oldest Kubernetes the manifests target: securityContext.appArmorProfile is 1.30's.
MIN_KUBERNETES = "1.30.0"
#: Services that run candidate programs, and the images' other services.
SANDBOX_SERVICES = {"ray-worker", "worker"}
SERVICES = {"postgres", "mlflow", "prefect-server", "ray-head"} | SANDBOX_SERVICES
#: Capabilities a container gets by default: Docker's and containerd's, and CRI-O's smaller set.
DEFAULT_CAPS = {
    "docker": "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE "
              "SYS_CHROOT KILL AUDIT_WRITE",
    "cri-o": "CHOWN DAC_OVERRIDE FSETID FOWNER SETGID SETUID SETPCAP NET_BIND_SERVICE KILL",
}
#: Environment variables the project's code does not read and no installed package can be
#: searched for: who reads them.
READ_ELSEWHERE = {
    "POSTGRES_USER": "the postgres image", "POSTGRES_PASSWORD": "the postgres image",
    "POSTGRES_DB": "the postgres image", "PGDATA": "the postgres image",
    "AWS_ACCESS_KEY_ID": "boto3 (MLflow's S3 artifacts, DVC's S3 remote)",
    "AWS_SECRET_ACCESS_KEY": "boto3", "AWS_DEFAULT_REGION": "boto3",
    "PATH": "the shell", "PYTHONUNBUFFERED": "Python", "PIP_EXTRA_INDEX_URL": "pip (the image's build)",
}


# ----------------------------------------------------------------------------- loading


def yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@functools.cache
def compose() -> dict:
    """The compose file with YAML anchors and merge keys resolved, variables not interpolated."""
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


@functools.cache
def k8s_documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml_documents(path)]


def k8s_kind(kind: str) -> list[dict]:
    return [doc for _, doc in k8s_documents() if doc["kind"] == kind]


def pod_templates() -> list[tuple[str, dict]]:
    """(owner, pod template) of every workload and Ray node group."""
    found = []
    for _, doc in k8s_documents():
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "StatefulSet"):
            found.append((name, spec["template"]))
        cluster = spec.get("rayClusterSpec", spec) if doc["kind"] in ("RayCluster", "RayJob") else None
        if cluster:
            found.append((f"{name} head", cluster["headGroupSpec"]["template"]))
            found += [(f"{name} {group['groupName']}", group["template"]) for group in cluster["workerGroupSpecs"]]
    return found


def containers() -> list[tuple[str, dict]]:
    return [(f"{owner} {c['name']}", c) for owner, template in pod_templates()
            for c in template["spec"].get("initContainers", []) + template["spec"]["containers"]]


def container_env(container: dict) -> dict[str, str]:
    """Literal values, and the ConfigMap values it takes through envFrom / configMapKeyRef."""
    maps = {m["metadata"]["name"]: m["data"] for m in k8s_kind("ConfigMap")}
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("configMapKeyRef")
        env[var["name"]] = maps[ref["name"]][ref["key"]] if ref else var.get("value", "<secret>")
    return env


def sandbox_containers() -> list[tuple[str, dict]]:
    return [(name, c) for name, c in containers()
            if c["name"] in ("worker", "ray-worker") and "initContainers" not in name]


def service_env(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in (compose()["services"][name].get("environment") or {}).items()}


def service_command(name: str) -> list[str]:
    command = compose()["services"][name]["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement_specs() -> dict[str, str]:
    """pyproject's dependencies: normalised name -> specifier."""
    from packaging.requirements import Requirement

    found = {}
    for line in pyproject()["project"]["dependencies"]:
        requirement = Requirement(line)
        found[requirement.name.lower().replace("_", "-")] = str(requirement.specifier)
    return found


# ----------------------------------------------------------------------------- compose


def test_compose_file_passes_docker_compose_validation(tmp_path):
    """`docker-compose config`: the compose schema, variable interpolation, merge keys and
    references between services (Debian's docker-compose; no engine needed)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    env_file = tmp_path / "env"
    env_file.write_text("POSTGRES_PASSWORD=test-password\nRAY_AUTH_TOKEN=test-token\n")

    def check(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([binary, "--env-file", str(env_file), "--project-directory", str(INFRA), "-f", str(path),
                               "config", "-q"], capture_output=True, text=True)

    result = check(INFRA / "compose.yaml")
    assert result.returncode == 0, result.stderr
    # The same check rejects an unknown option: it validates, not just parses.
    broken = tmp_path / "compose.yaml"
    broken.write_text((INFRA / "compose.yaml").read_text().replace("shm_size:", "shm_sise:", 1))
    assert "shm_sise" in check(broken).stderr


def test_compose_services_are_wired_by_name_with_health_conditions():
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        for target, condition in (service.get("depends_on") or {}).items():
            assert condition == {"condition": "service_healthy"}, (name, target)
            assert "healthcheck" in services[target], (name, target)
    assert set(services["worker"]["depends_on"]) == {"prefect-server", "mlflow", "ray-head"}
    assert set(services["ray-worker"]["depends_on"]) == {"ray-head"}
    assert set(services["mlflow"]["depends_on"]) == set(services["prefect-server"]["depends_on"]) == {"postgres"}


def port_option(command: list[str], option: str = "--port") -> str:
    for i, part in enumerate(command):
        if part == option:
            return command[i + 1]
        if part.startswith(option + "="):
            return part.split("=", 1)[1]
    raise AssertionError(f"{option} not in {command}")


def test_compose_clients_reach_servers_only_through_their_urls():
    worker = service_env("worker")
    tracking, api, ray_address = (urlsplit(worker["MLFLOW_TRACKING_URI"]), urlsplit(worker["PREFECT_API_URL"]),
                                  worker["RAY_ADDRESS"])
    assert (tracking.scheme, tracking.hostname) == ("http", "mlflow")
    assert str(tracking.port) == port_option(service_command("mlflow"))
    assert (api.hostname, api.path) == ("prefect-server", "/api")
    assert str(api.port) == port_option(service_command("prefect-server"))
    # The GCS address of the head, as in the tests: this worker is itself a Ray node.
    assert ray_address == f"ray-head:{port_option(service_command('ray-head'))}"
    assert f"--address={ray_address}" in service_command("worker")[2]
    assert f"--address={ray_address}" in service_command("ray-worker")
    # Databases are the servers' business: no client holds a database URL or a store path.
    for name in ("worker", "ray-head", "ray-worker"):
        assert not any("postgres" in value or "sqlite" in value for value in service_env(name).values()), name


def test_compose_servers_use_postgres_and_proxied_artifacts():
    mlflow = service_env("mlflow")
    assert service_command("mlflow")[:2] == ["mlflow", "server"] and "--serve-artifacts" in service_command("mlflow")
    assert mlflow["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://coderanker:")
    assert mlflow["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert mlflow["MLFLOW_ARTIFACTS_DESTINATION"]
    prefect = service_env("prefect-server")
    assert prefect["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://coderanker:")
    assert prefect["PREFECT_API_DATABASE_CONNECTION_URL"].endswith("@postgres:5432/prefect")
    # The database drivers the two URLs name are installed (SQLAlchemy imports them on create_engine).
    import sqlalchemy

    for url in (mlflow["MLFLOW_BACKEND_STORE_URI"], prefect["PREFECT_API_DATABASE_CONNECTION_URL"]):
        engine = sqlalchemy.create_engine(url.replace("${POSTGRES_PASSWORD}", "password"))
        assert engine.dialect.dbapi is not None
        engine.dispose()
    assert service_env("postgres")["POSTGRES_DB"] == "mlflow"
    assert "CREATE DATABASE prefect" in (INFRA / "postgres-init.sql").read_text()


def test_mlflow_server_options_come_from_mlflow_environment_variables():
    """The compose file and the Deployment pass --backend-store-uri and --artifacts-destination
    through the variables MLflow's CLI reads for them."""
    from mlflow.cli import server

    envvars = {param.opts[0]: param.envvar for param in server.params}
    assert envvars["--backend-store-uri"] == "MLFLOW_BACKEND_STORE_URI"
    assert envvars["--artifacts-destination"] == "MLFLOW_ARTIFACTS_DESTINATION"
    assert envvars["--allowed-hosts"] == "MLFLOW_SERVER_ALLOWED_HOSTS"
    (deployment,) = [c for name, c in containers() if name.startswith("Deployment/mlflow mlflow")]
    assert {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION"} <= set(container_env(deployment))


def test_mlflow_accepts_the_host_its_clients_send():
    """MLflow 3 refuses unknown Host headers (403): the tracking URI's host must be allowed."""
    from mlflow.server.security_utils import is_allowed_host_header

    def allowed(value: str) -> list[str]:
        return [host.strip() for host in value.split(",")]

    compose_allowed = allowed(service_env("mlflow")["MLFLOW_SERVER_ALLOWED_HOSTS"])
    assert is_allowed_host_header(compose_allowed, urlsplit(service_env("worker")["MLFLOW_TRACKING_URI"]).netloc)
    assert is_allowed_host_header(compose_allowed, "localhost:5000")  # the published port
    (deployment,) = [c for name, c in containers() if name.startswith("Deployment/mlflow mlflow")]
    k8s_allowed = allowed(container_env(deployment)["MLFLOW_SERVER_ALLOWED_HOSTS"])
    (config,) = [m["data"] for m in k8s_kind("ConfigMap") if m["metadata"]["name"] == "coderanker-config"]
    assert is_allowed_host_header(k8s_allowed, urlsplit(config["MLFLOW_TRACKING_URI"]).netloc)
    assert not is_allowed_host_header(k8s_allowed, "evil.example.com:5000")


def test_ray_nodes_and_their_clients_share_token_authentication():
    for name in ("ray-head", "ray-worker", "worker"):
        env = service_env(name)
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?"), name
    for doc in k8s_kind("RayCluster") + [job["spec"]["rayClusterSpec"] for job in k8s_kind("RayJob")]:
        spec = doc.get("spec", doc)
        assert spec["authOptions"] == {"mode": "token", "secretName": "coderanker-ray-token"}
    (worker,) = [c for name, c in containers() if name.startswith("Deployment/prefect-worker")]
    env = {var["name"]: var for var in worker["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "coderanker-ray-token", "key": "auth_token"}


def test_postgres_init_is_the_same_in_compose_and_kubernetes():
    (init,) = [m for m in k8s_kind("ConfigMap") if m["metadata"]["name"] == "postgres-init"]
    assert init["data"]["10-prefect.sql"] == (INFRA / "postgres-init.sql").read_text()
    assert "./postgres-init.sql:/docker-entrypoint-initdb.d/10-prefect.sql:ro" in compose()["services"]["postgres"][
        "volumes"]


# ----------------------------------------------------------------------------- sandbox privileges


def test_sandbox_privileges_are_the_same_everywhere_and_only_where_programs_run():
    services = compose()["services"]
    caps = {name: set(services[name].get("cap_add", [])) for name in services}
    options = {name: set(services[name].get("security_opt", [])) for name in services}
    for name in SANDBOX_SERVICES:
        assert caps[name] == {"SYS_ADMIN", "NET_ADMIN"}, name
        assert options[name] == {"seccomp=unconfined", "apparmor=unconfined"}, name
    for name in SERVICES - SANDBOX_SERVICES:
        assert not caps[name] and not options[name], f"{name} runs no programs and needs no privileges"
    assert len(sandbox_containers()) == 3  # the Prefect worker, the RayCluster's and the RayJob's worker group
    for name, container in sandbox_containers():
        context = container["securityContext"]
        assert context["runAsUser"] == 0, name
        assert set(context["capabilities"]["add"]) == caps["worker"], name
        assert context["seccompProfile"] == {"type": "Unconfined"}, name
        assert context["appArmorProfile"] == {"type": "Unconfined"}, name
        assert "privileged" not in context, name
    for name, container in containers():
        if (name, container) not in sandbox_containers():
            assert "capabilities" not in container.get("securityContext", {}), name
    (namespace,) = k8s_kind("Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def bounding_set() -> set[str]:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    names = subprocess.run(["setpriv", "--list-caps"], capture_output=True, text=True, check=True).stdout.split()
    return {name.upper() for number, name in enumerate(names) if libc.prctl(23, number, 0, 0, 0) == 1}  # CAPBSET_READ


def run_sandbox(tmp_path: Path, caps: set[str]) -> list[str]:
    """`coderanker execute` of a passing and a failing Python program, as root with only `caps`
    (the bounding set a container runtime would give it); the statuses."""
    tmp_path.mkdir()
    problems, candidates, out = tmp_path / "problems.jsonl", tmp_path / "candidates.jsonl", tmp_path / "out.jsonl"
    problems.write_text(json.dumps({"name": "double", "language": "py", "prompt": "def double(x):\n",
                                    "tests": "\nassert double(2) == 4\n", "stop_tokens": []}) + "\n")
    candidates.write_text("".join(json.dumps({"name": "double", "completion": body}) + "\n"
                                  for body in ("    return 2 * x\n", "    return x + 1\n")))
    bounding = ",".join(["-all"] + [f"+{cap.lower()}" for cap in sorted(caps)])
    subprocess.run(["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--",
                    str(VENV_BIN / "coderanker"), "execute", "--problems", str(problems), "--candidates",
                    str(candidates), "--out", str(out), "--workers", "1"],
                   cwd=ROOT, capture_output=True, text=True, timeout=300)
    return [json.loads(line)["status"] for line in out.read_text().splitlines()] if out.exists() else []


@pytest.mark.parametrize("runtime", sorted(DEFAULT_CAPS))
def test_sandbox_runs_with_the_runtime_defaults_plus_cap_add_and_not_without_each(runtime, tmp_path):
    """What the manifests grant is enough and each capability is needed: the sandbox as the
    container would run it (root, the runtime's default capabilities plus cap_add). Seccomp
    and AppArmor profiles cannot be applied here; capabilities can."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("bwrap"):
        pytest.skip("needs root, setpriv (util-linux) and bubblewrap")
    granted = set(DEFAULT_CAPS[runtime].split()) | set(compose()["services"]["worker"]["cap_add"])
    if not granted <= bounding_set():
        pytest.skip(f"this process lacks {sorted(granted - bounding_set())}")
    assert run_sandbox(tmp_path / "granted", granted) == ["passed", "failed"]
    for cap in compose()["services"]["worker"]["cap_add"]:
        assert set(run_sandbox(tmp_path / f"without-{cap}", granted - {cap})) == {"sandbox_error"}, cap


# ----------------------------------------------------------------------------- Kubernetes


def test_kubernetes_manifests_match_the_kubernetes_schemas():
    """Strict (unknown fields are errors) against the oldest targeted release and the newest
    one kubernetes-validate ships; KubeRay's pod templates as core/v1 PodTemplateSpecs."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    from kubernetes_validate.utils import latest_version

    checked = 0
    for version in (MIN_KUBERNETES, latest_version()):
        for filename, doc in k8s_documents():
            if doc["apiVersion"].startswith("ray.io/"):
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(map(str, error.path))
                pytest.fail(f"{filename}: {doc['kind']}/{doc['metadata']['name']}: {path}: {error.message} ({version})")
            checked += 1
        for owner, template in pod_templates():
            doc = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": template}
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{owner}: template.{'.'.join(map(str, error.path))}: {error.message} ({version})")
    assert checked


#: KubeRay v1 (ray-operator/config/crd/bases, release 1.7): the fields each object may have.
RAYCLUSTER_SPEC = {"authOptions", "autoscalerOptions", "enableInTreeAutoscaling", "gcsFaultToleranceOptions",
                   "headGroupSpec", "headServiceAnnotations", "managedBy", "rayVersion", "suspend",
                   "workerGroupSpecs"}
HEAD_GROUP = {"enableIngress", "headService", "rayStartParams", "serviceType", "template", "resources", "labels"}
WORKER_GROUP = {"groupName", "idleTimeoutSeconds", "maxReplicas", "minReplicas", "numOfHosts", "rayStartParams",
                "replicas", "scaleStrategy", "suspend", "template", "resources", "labels"}
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "clusterSelector", "entrypoint", "entrypointNumCpus",
               "entrypointNumGpus", "entrypointResources", "jobId", "managedBy", "metadata", "rayClusterSpec",
               "runtimeEnvYAML", "shutdownAfterJobFinishes", "submissionMode", "submitterPodTemplate", "suspend",
               "ttlSecondsAfterFinished", "deletionStrategy", "submitterConfig", "preRunningDeadlineSeconds"}


def check_ray_cluster_spec(spec: dict, where: str) -> None:
    assert set(spec) <= RAYCLUSTER_SPEC, (where, set(spec) - RAYCLUSTER_SPEC)
    assert {"headGroupSpec", "workerGroupSpecs", "rayVersion"} <= set(spec), where
    head = spec["headGroupSpec"]
    assert set(head) <= HEAD_GROUP and "template" in head, where
    groups = spec["workerGroupSpecs"]
    assert groups and len({g["groupName"] for g in groups}) == len(groups), where
    for group in groups:
        assert set(group) <= WORKER_GROUP, (where, set(group) - WORKER_GROUP)
        assert {"groupName", "minReplicas", "maxReplicas", "template"} <= set(group), where
        assert group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"], where
    for params in [head.get("rayStartParams", {})] + [g.get("rayStartParams", {}) for g in groups]:
        assert all(isinstance(value, str) for value in params.values()), (where, params)  # map[string]string
    names = [c["name"] for c in head["template"]["spec"]["containers"]]
    assert names[0] == "ray-head", where  # KubeRay starts Ray in the first container
    ports = {p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001}, where


def test_kuberay_objects_use_only_kuberay_v1_fields():
    (cluster,) = k8s_kind("RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    check_ray_cluster_spec(cluster["spec"], "RayCluster")
    (job,) = k8s_kind("RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    assert set(job["spec"]) <= RAYJOB_SPEC, set(job["spec"]) - RAYJOB_SPEC
    assert job["spec"]["shutdownAfterJobFinishes"] is True and isinstance(job["spec"]["entrypoint"], str)
    check_ray_cluster_spec(job["spec"]["rayClusterSpec"], "RayJob")


def test_ray_start_params_and_versions_match_the_installed_ray():
    import ray
    from packaging.specifiers import SpecifierSet

    options = cli_options(("ray", "start"))
    for doc in k8s_kind("RayCluster") + [job["spec"]["rayClusterSpec"] for job in k8s_kind("RayJob")]:
        spec = doc.get("spec", doc)
        assert spec["rayVersion"] == ray.__version__
        assert spec["rayVersion"] in SpecifierSet(requirement_specs()["ray"])
        for params in [spec["headGroupSpec"]["rayStartParams"]] + [g["rayStartParams"] for g in
                                                                   spec["workerGroupSpecs"]]:
            assert {f"--{key}" for key in params} <= options, params


def test_kubernetes_references_resolve():
    """Secrets, ConfigMaps, volumes, Services and the Ray head Service all exist by the names used."""
    secrets = {s["metadata"]["name"]: set(s["stringData"]) for s in yaml_documents(K8S / "secrets.example.yaml")}
    maps = {m["metadata"]["name"]: set(m["data"]) for m in k8s_kind("ConfigMap")}
    claims = {c["metadata"]["name"] for c in k8s_kind("PersistentVolumeClaim")}
    claim_templates = {claim["metadata"]["name"] for stateful in k8s_kind("StatefulSet")
                       for claim in stateful["spec"]["volumeClaimTemplates"]}
    for owner, template in pod_templates():
        for container in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, owner
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in maps, owner
            for var in container.get("env", []):
                ref = var.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["key"] in secrets[ref["secretKeyRef"]["name"]], (owner, var)
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in maps[ref["configMapKeyRef"]["name"]], (owner, var)
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in template["spec"].get("volumes", [])} | claim_templates, owner
        for volume in template["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, owner
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, owner
            if "configMap" in volume:
                assert volume["configMap"]["name"] in maps, owner
        labels = template["metadata"]["labels"]
        assert labels.get("app.kubernetes.io/part-of") == "coderanker", owner
    for doc in k8s_kind("Deployment") + k8s_kind("StatefulSet"):
        assert doc["spec"]["selector"]["matchLabels"].items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    workloads = {doc["metadata"]["name"]: doc["spec"]["template"] for doc in k8s_kind("Deployment")
                 + k8s_kind("StatefulSet")}
    services = {}
    for service in k8s_kind("Service"):
        (template,) = [t for t in workloads.values()
                       if service["spec"]["selector"].items() <= t["metadata"]["labels"].items()]
        ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert ports[port["targetPort"]] == port["port"], service["metadata"]["name"]
        services[service["metadata"]["name"]] = {p["port"] for p in service["spec"]["ports"]}
    (config,) = [m["data"] for m in k8s_kind("ConfigMap") if m["metadata"]["name"] == "coderanker-config"]
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        url = urlsplit(config[key])
        assert url.port in services[url.hostname], key
    (worker,) = [c for name, c in containers() if name.startswith("Deployment/prefect-worker")]
    ray_address = urlsplit(container_env(worker)["RAY_ADDRESS"])
    (cluster,) = k8s_kind("RayCluster")
    assert ray_address.scheme == "ray" and ray_address.hostname == f"{cluster['metadata']['name']}-head-svc"
    assert ray_address.port == 10001
    for spec in [cluster["spec"]] + [job["spec"]["rayClusterSpec"] for job in k8s_kind("RayJob")]:
        assert "auth_token" in secrets[spec["authOptions"]["secretName"]]


def test_kustomization_lists_the_stack_and_rewrites_the_image():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert all((K8S / name).exists() for name in listed)
    # Applied on their own, on purpose: the Secrets' real values and a pipeline run.
    assert {path.name for path in K8S.glob("*.yaml")} - listed == {"kustomization.yaml", "secrets.example.yaml",
                                                                   "rayjob.yaml"}
    (image,) = kustomization["images"]
    spelled_out = f"{image['newName']}:{image['newTag']}"
    for name, container in containers():
        expected = "postgres:15-bookworm" if container["image"].startswith("postgres") else (
            spelled_out if name.startswith("RayJob") else image["name"])
        assert container["image"] == expected, name


def test_rayjob_entrypoint_is_a_script_of_the_image_with_valid_overrides(monkeypatch):
    """The RayJob runs infra/ray-job.sh from the image; it parses, and the params it writes
    (through the flow's own `configure`) pass the typed check, with the storage every Ray pod mounts."""
    import types

    from coderanker.config import apply_overrides, load_params

    (job,) = k8s_kind("RayJob")
    program, script = shlex.split(job["spec"]["entrypoint"])
    assert program == "sh" and script.startswith("/opt/coderanker/")  # the image's WORKDIR
    path = ROOT / script.removeprefix("/opt/coderanker/")
    assert path.exists() and "WORKDIR /opt/coderanker" in (INFRA / "Dockerfile").read_text()
    syntax = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    snippet = re.search(r"<<'PY'\n(.*?)\nPY\n", path.read_text(), re.S).group(1)
    calls = []
    monkeypatch.setitem(sys.modules, "flows.self_training", types.SimpleNamespace(configure=lambda *a: calls.append(a)))
    for name in ("CODERANKER_PROFILE", "CODERANKER_RAY_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    exec(compile(snippet, str(path), "exec"), {})
    ((repo, profile, rounds, overrides),) = calls
    env = container_env(job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0])
    assert (ROOT / "configs" / f"{env['CODERANKER_PROFILE']}.yaml").exists()
    apply_overrides(load_params(ROOT / "configs" / f"{env['CODERANKER_PROFILE']}.yaml"), overrides)  # raises if bad
    assert overrides["execute.backend"] == "ray"
    for _, template in pod_templates():
        if template["metadata"]["labels"]["app.kubernetes.io/name"].startswith("ray-job"):
            mounts = {m["mountPath"] for m in template["spec"]["containers"][0]["volumeMounts"]}
            assert overrides["ray.storage_path"] in mounts


# ----------------------------------------------------------------------------- commands and options


#: The CLI commands infra/ runs: MLflow's and Ray's are click commands, read in this process;
#: Prefect's help is read from the CLI, both at once (each takes seconds to start).
CLICK_COMMANDS = {("mlflow", "server"): ("mlflow.cli", "server"), ("ray", "start"): ("ray.scripts.scripts", "start"),
                  ("ray", "stop"): ("ray.scripts.scripts", "stop")}
HELP_COMMANDS = (("prefect", "worker", "start"), ("prefect", "server", "start"))


@functools.cache
def cli_help() -> dict[tuple[str, ...], str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    running = {command: subprocess.Popen([str(VENV_BIN / command[0]), *command[1:], "--help"], env=env, text=True,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE) for command in HELP_COMMANDS}
    found = {}
    for command, process in running.items():
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, (command, err[-2000:])
        found[command] = out
    return found


@functools.cache
def cli_options(command: tuple[str, ...]) -> frozenset[str]:
    """The --options the installed CLI has for `command`."""
    import importlib

    if command in CLICK_COMMANDS:
        module, name = CLICK_COMMANDS[command]
        click_command = getattr(importlib.import_module(module), name)
        return frozenset(opt for param in click_command.params for opt in param.opts if opt.startswith("--"))
    assert command in HELP_COMMANDS, f"{' '.join(command)}: not a command infra/ is expected to run"
    return frozenset(re.findall(r"(--[a-z][a-z0-9-]*)", cli_help()[command]))


SUBCOMMANDS = {"prefect": 2, "mlflow": 1, "ray": 1}  # words after the program that name the command


def check_command(words: list[str], where: str) -> None:
    if words[0] in ("sh", "bash") and words[1] == "-c":
        for part in re.split(r"&&|;", words[2]):
            if part.strip():
                check_command(shlex.split(part.replace("exec ", "", 1)), where)
        return
    if words[0] not in SUBCOMMANDS:
        return
    depth = SUBCOMMANDS[words[0]]
    command = tuple(words[: depth + 1])
    options = {word.split("=", 1)[0] for word in words[depth + 1:] if word.startswith("--")}
    missing = options - cli_options(command)
    assert not missing, f"{where}: {' '.join(command)} has no {sorted(missing)}"


def dockerfile_cmd() -> list[str]:
    (line,) = [line for line in (INFRA / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(line[4:])


def test_commands_use_real_entry_points_and_options():
    commands = [(f"compose {name}", service_command(name)) for name in SERVICES - {"postgres"}]
    commands += [(name, c.get("command", []) + c.get("args", [])) for name, c in containers() if "command" in c]
    commands.append(("Dockerfile CMD", dockerfile_cmd()))
    ray_up = yaml.safe_load((INFRA / "ray-cluster.yaml").read_text())
    for line in ray_up["head_start_ray_commands"] + ray_up["worker_start_ray_commands"]:
        words = [word for word in shlex.split(line) if not re.match(r"^[A-Z_]+=", word)]  # env assignments
        commands.append(("ray-cluster.yaml", [Path(words[0]).name, *words[1:]]))
    programs = set()
    for where, words in commands:
        check_command(words, where)
        programs.add(words[0] if words[0] not in ("sh", "bash") else shlex.split(words[2])[0])
    assert {"mlflow", "prefect", "ray"} <= programs
    for words in [service_command("worker")[2], " ".join(dockerfile_cmd())]:
        assert "prefect worker start --pool coderanker-cluster --type process" in words


def test_workers_poll_the_pool_the_git_clone_deployments_use():
    """Workers get their code from the deployment's git_clone pull step: the pool they poll is
    the one infra/prefect-cluster.yaml's process deployments name."""
    path = INFRA / "prefect-cluster.yaml"
    if not path.exists():
        pytest.skip("infra/prefect-cluster.yaml is not in this checkout")
    deployments = yaml.safe_load(path.read_text())
    assert "prefect.deployments.steps.git_clone" in deployments["pull"][0]
    pools = {d["work_pool"]["name"] for d in deployments["deployments"] if "job_variables" not in d["work_pool"]}
    for where, words in [("compose", service_command("worker")[2])] + [
            (name, " ".join(c["command"])) for name, c in containers() if name.startswith("Deployment/prefect-worker")]:
        assert re.search(r"--pool (\S+)", words).group(1) in pools, where


# ----------------------------------------------------------------------------- environment variables


def infra_env_names() -> dict[str, str]:
    """Every environment variable infra/ sets for a process: name -> where."""
    found = {}
    for name, service in compose()["services"].items():
        for key in service.get("environment") or {}:
            found.setdefault(key, f"compose {name}")
    for name, container in containers():
        for key in [var["name"] for var in container.get("env", [])]:
            found.setdefault(key, name)
    for config in k8s_kind("ConfigMap"):
        if config["metadata"]["name"] == "coderanker-config":
            found.update({key: "ConfigMap coderanker-config" for key in config["data"]})
    for secret in yaml_documents(K8S / "secrets.example.yaml"):
        if secret["metadata"]["name"] == "coderanker-s3":  # the one read through envFrom
            found.update({key: "Secret coderanker-s3" for key in secret["stringData"]})
    for key in re.findall(r"^\s+([A-Z][A-Z0-9_]+)=", (INFRA / "Dockerfile").read_text(), re.M):
        found.setdefault(key, "Dockerfile ENV")
    return found


@functools.cache
def names_in_package(package: str, prefix: str) -> frozenset[str]:
    """Environment-variable-like names that occur in an installed package's Python sources."""
    import importlib.util

    root = Path(importlib.util.find_spec(package).origin).parent
    pattern = re.compile(rf"\b{prefix}[A-Z0-9_]+\b")
    names: set[str] = set()
    for path in root.rglob("*.py"):
        names.update(pattern.findall(path.read_text(errors="ignore")))
    return frozenset(names)


def project_sources() -> str:
    return "\n".join(path.read_text() for folder in ("coderanker", "pipelines", "tasks", "flows")
                     for path in (ROOT / folder).rglob("*.py"))


def test_every_environment_variable_is_read_by_something_installed():
    from mlflow import environment_variables as mlflow_env
    from mlflow.cli import server
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_valid_setting_names

    prefect_names = _get_valid_setting_names(Settings)
    mlflow_names = {name for name in dir(mlflow_env) if name.startswith("MLFLOW_")} | {
        param.envvar for param in server.params if param.envvar}
    code = project_sources()
    # Read by infra's own scripts, or templated into a deployment by `prefect deploy`.
    infra_readers = "\n".join(path.read_text() for path in [*INFRA.glob("*.sh"), INFRA / "prefect-cluster.yaml"]
                              if path.exists())
    unknown = []
    for name, where in sorted(infra_env_names().items()):
        if name.startswith("CODERANKER_"):
            known = name in code or name in infra_readers
        elif name.startswith("PREFECT_"):
            known = name in prefect_names
        elif name.startswith("MLFLOW_"):
            known = name in mlflow_names
        elif name.startswith(("RAY_", "HF_", "DVC_")):
            package = {"RAY_": "ray", "HF_": "huggingface_hub", "DVC_": "dvc"}[name[: name.index("_") + 1]]
            known = name in names_in_package(package, name[: name.index("_") + 1])
        else:
            known = name in READ_ELSEWHERE
        if not known:
            unknown.append(f"{name} ({where})")
    assert not unknown, f"read by nothing installed: {unknown}"


def test_clients_get_the_variables_the_code_reads():
    code = (ROOT / "coderanker" / "tracking.py").read_text() + (ROOT / "coderanker" / "sandbox" /
                                                                 "ray_backend.py").read_text()
    assert 'environ.get("MLFLOW_TRACKING_URI")' in code and 'environ.get("RAY_ADDRESS")' in code
    assert {"MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS"} <= set(service_env("worker"))
    (worker,) = [c for name, c in containers() if name.startswith("Deployment/prefect-worker")]
    assert {"MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS"} <= set(container_env(worker))


# ----------------------------------------------------------------------------- the image


def test_image_installs_with_make_setup_and_the_makefiles_settings():
    dockerfile = (INFRA / "Dockerfile").read_text()
    runs = " ".join(line for line in dockerfile.replace("\\\n", " ").splitlines() if line.startswith("RUN "))
    assert "make system-packages" in runs and "make setup PYTHON=python3" in runs
    # The CPU build of pyproject's torch pin, as the development machines install it.
    assert re.search(r"ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cpu\n", dockerfile)
    assert 'PIP_EXTRA_INDEX_URL="$TORCH_INDEX_URL" make setup' in dockerfile
    base = re.search(r"^FROM python:(\d+)\.(\d+)-slim-bookworm$", dockerfile, re.M)
    assert base and f"py{base.group(1)}{base.group(2)}" == pyproject()["tool"]["ruff"]["target-version"]
    # The Makefile's exported settings hold in the image too.
    exports = dict(re.findall(r"^export (\w+) := (\S+)$", (ROOT / "Makefile").read_text(), re.M))
    env = dict(re.findall(r"^\s+(\w+)=(\S+?)(?: \\)?$", dockerfile, re.M))
    assert exports and all(env.get(key) == value for key, value in exports.items()), (exports, env)


def test_image_pins_agree_with_pyproject_and_the_environment():
    from importlib.metadata import PackageNotFoundError, version

    from packaging.specifiers import SpecifierSet

    pins = dict(re.findall(r"([A-Za-z0-9_.-]+)==([0-9][A-Za-z0-9_.+-]*)", " ".join(
        line for line in (INFRA / "Dockerfile").read_text().splitlines() if "pip install" in line)))
    assert pins, "no pinned extras"
    specs = requirement_specs()
    for name, pinned in pins.items():
        if name.lower() in specs:
            assert pinned in SpecifierSet(specs[name.lower()]), (name, pinned, specs[name.lower()])
        try:
            assert version(name) == pinned, (name, pinned, version(name))
        except PackageNotFoundError:
            pass  # not in the development environment (boto3: the image's MLflow server only)
    # The same PostgreSQL major version as the tests' server.
    stack = ROOT / "tests" / "integration" / "stack.py"
    if stack.exists():
        major = re.search(r"postgresql/(\d+)/bin", stack.read_text()).group(1)
        assert compose()["services"]["postgres"]["image"] == f"postgres:{major}-bookworm"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rules: patterns are anchored at the context's root, `*` and `?` stop at `/`,
    `**` crosses folders, a pattern that matches a folder covers what is in it, and the last
    matching pattern wins (`!` re-includes)."""
    def regex(pattern: str) -> re.Pattern:
        parts = re.split(r"(\*\*/?|\*|\?)", pattern.strip("/"))
        table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
        return re.compile("".join(table.get(part, re.escape(part)) for part in parts) + "(?:/.*)?")

    excluded = False
    for pattern in patterns:
        if regex(pattern.lstrip("!")).fullmatch(path):
            excluded = not pattern.startswith("!")
    return excluded


def test_build_context_keeps_the_source_and_leaves_out_machine_state():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".venv/bin/python", ".tools/node_modules/typescript/package.json", ".git/config", ".dvc/cache/x",
                 ".dvc/tmp/self-training.lock", ".dvc/config.local", "mlflow.db", "mlruns/0/meta.yaml",
                 "mlartifacts/1/x", "models/r0/reranker/model.safetensors", "data/r0/candidates.jsonl",
                 "coderanker.egg-info/PKG-INFO", "infra/.env", "infra/k8s/secrets.yaml",
                 "coderanker/__pycache__/x.pyc"):
        assert dockerignored(path, patterns), f"{path} would be sent to the build"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for path in tracked.splitlines():
        if not path.startswith(("data/", "models/")):  # DVC outputs' folders: only their .gitignore files
            assert not dockerignored(path, patterns), f"{path} is tracked but left out of the build"
    for path in ("Makefile", "pyproject.toml", "README.md", "coderanker/cli.py", "infra/ray-job.sh",
                 "data/sources/README.md", ".dvc/config"):
        assert not dockerignored(path, patterns), path
