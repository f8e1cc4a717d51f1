"""infra/prefect-cluster.yaml, checked against what it names: the flow's parameters, the
git_clone pull step, and (for the docker pool, which can't run here) the job variables the
docker worker's base job template defines."""

from __future__ import annotations

import inspect

import yaml

from flows.self_training import self_training

from ..helpers import REPO

CLUSTER = yaml.safe_load((REPO / "infra" / "prefect-cluster.yaml").read_text())


def test_every_run_clones_the_deployed_commit():
    (step,) = CLUSTER["pull"]
    clone = step["prefect.deployments.steps.git_clone"]
    assert clone == {"repository": "{{ $CODERANKER_GIT_URL }}", "commit_sha": "{{ $CODERANKER_GIT_COMMIT }}"}


def test_deployments_name_the_flow_and_parameters_it_takes():
    accepted = set(inspect.signature(self_training.fn).parameters)
    for deployment in CLUSTER["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        assert (REPO / path).is_file() and name == "self_training"
        assert set(deployment["parameters"]) <= accepted, deployment["name"]
        assert deployment["parameters"]["publish"] is True, "a clone's results must leave the worker"


def test_docker_job_variables_are_the_docker_workers():
    from prefect_docker.worker import DockerWorker

    template = DockerWorker.get_default_base_job_template()["variables"]["properties"]
    docker = [d for d in CLUSTER["deployments"] if d["work_pool"]["name"] == "coderanker-docker"]
    assert docker
    for deployment in docker:
        variables = deployment["work_pool"]["job_variables"]
        assert set(variables) <= set(template), set(variables) - set(template)
        assert "seccomp=unconfined" in variables["container_create_kwargs"]["security_opt"]
