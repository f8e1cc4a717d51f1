"""MLflow's UI on the project's experiment, in a real browser (headless Chromium): a real
`mlflow server` (SQLite in tmp), the experiment and a run made by coderanker.tracking, the
page as the browser renders it (`--dump-dom` once its requests are answered).

MLflow 3.17's UI ignores `mlflow.experimentKind` on the experiment page: the view comes from
its GenAI / Model training switch (the page's `?workflowType=`, else the browser's saved
choice, default GenAI). So the tag is checked through the API, the runs table through
`tracking.experiment_page` (the address with the Model training view), and the plain
address is a strict xfail that turns red when MLflow honours the tag again."""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from coderanker import tracking

from .stack import free_port

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
GENAI_OVERVIEW = "Tokens per Trace"  # a panel of the GenAI view's overview of traces


def stop_group(process: subprocess.Popen, seconds: float = 20) -> None:
    """SIGTERM a process group this test started (its leader's pid), SIGKILL after `seconds`."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=seconds)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + seconds
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_alive(process.pid):
        os.killpg(process.pid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The address of an `mlflow server` on a free port, its store a SQLite file in tmp."""
    root = tmp_path_factory.mktemp("mlflow-ui")
    port, log = free_port(), root / "server.log"
    venv = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv}:{os.environ['PATH']}",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no GenAI job workers: nothing here needs them
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "w") as output:
        process = subprocess.Popen(
            ["mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"mlflow server exited:\n{log.read_text()[-4000:]}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"mlflow server not up:\n{log.read_text()[-4000:]}"
                time.sleep(1)
        yield url
    finally:
        stop_group(process)


@pytest.fixture(scope="module")
def experiment(server, tmp_path_factory):
    """(experiment id, the name of the run its runs table shows): made by the project's code,
    as a stage makes them (the pipeline's run, a round's and a stage's nested under it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", server)
        patch.delenv("CODERANKER_EXPERIMENT", raising=False)
        patch.chdir(tmp_path_factory.mktemp("project"))
        with tracking.stage_run("train_reranker", "r0", {"reranker": {"epochs": 1}}) as run:
            run.log_metrics({"loss": 0.5})
        client = tracking.client()
        parent = client.get_run(run.parent_run_id)  # the top-level row (its children fold under it)
        return parent.info.experiment_id, parent.info.run_name


def rendered(url: str, tmp_path: Path, budget_ms: int = 20000) -> tuple[str, str]:
    """(title, visible text) of a page once headless Chromium has run its scripts and
    answered its requests, in a fresh profile."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs the `chromium` Debian package (/usr/bin/chromium): apt-get install chromium")
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    browser = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        dom, _ = browser.communicate(timeout=120)
    finally:
        stop_group(browser)
        shutil.rmtree(profile, ignore_errors=True)
    title = html.unescape(re.search(r"<title>(.*?)</title>", dom, re.S).group(1))
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return title, " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_the_project_tags_its_experiment_as_model_training(tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    created = client.get_experiment(tracking.experiment_id(client, "fresh"))
    assert created.tags[tracking.EXPERIMENT_KIND] == "custom_model_development"
    older = client.create_experiment("older")  # made before the project tagged its experiments
    assert tracking.experiment_id(client, "older") == older
    assert client.get_experiment(older).tags[tracking.EXPERIMENT_KIND] == "custom_model_development"
    chosen = client.create_experiment("chosen", tags={tracking.EXPERIMENT_KIND: "genai_development"})
    tracking.experiment_id(client, "chosen")  # a kind someone set in the UI stays
    assert client.get_experiment(chosen).tags[tracking.EXPERIMENT_KIND] == "genai_development"


def test_the_experiment_page_shows_the_runs_table(server, experiment, tmp_path):
    experiment_id, run_name = experiment
    title, text = rendered(tracking.experiment_page(experiment_id, server), tmp_path)
    assert title.startswith("Runs - "), (title, text[:2000])
    assert run_name in text and "Run Name" in text, text[:2000]
    assert GENAI_OVERVIEW not in text


@pytest.mark.xfail(strict=True, reason="MLflow 3.17's UI opens every experiment in its GenAI view unless the "
                   "address or the browser picks Model training: it reads mlflow.experimentKind only behind a "
                   "flag its build turns off (workflow-based navigation, main.*.js)")
def test_the_plain_experiment_address_opens_on_the_runs_table(server, experiment, tmp_path):
    experiment_id, run_name = experiment
    title, text = rendered(f"{server}/#/experiments/{experiment_id}", tmp_path)
    assert title.startswith("Runs - ") and run_name in text, (title, text[:2000])
