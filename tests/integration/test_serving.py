"""The registered reranker as an MLflow model: its signature and input example, and
`mlflow models serve` answering over HTTP with the scores `coderanker rerank` writes.

The reranker is a tiny random one (tests/conftest.py), logged as the train_reranker stage
logs it and registered as the evaluate stage registers it, in a SQLite MLflow in tmp."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from coderanker import tracking
from coderanker.jsonl import read_jsonl, write_jsonl
from coderanker.problems import Problem
from coderanker.sources import starter

from ..helpers import sh
from .stack import free_port

pytestmark = pytest.mark.integration
CHAMPION = f"models:/{tracking.REGISTERED_RERANKER}@{tracking.CHAMPION}"
CPP_ADD = Problem(name="cpp_add", language="cpp", prompt="int add(int a, int b) {\n",
                  tests="int main() { return add(2, 3) == 5 ? 0 : 1; }\n", stop_tokens=("\n}",),
                  reference="    return a + b;\n}")


@pytest.fixture(scope="module")
def registry(tmp_path_factory, tiny_model_dir):
    """(project directory, MLflow URI): a tiny reranker registered as version 1, `champion`."""
    from coderanker.reranker import init_reranker
    from coderanker.serving import log_reranker

    root = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(root)
        reranker = init_reranker(tiny_model_dir, root / "models" / "reranker")
        with tracking.stage_run("train_reranker", "r0") as trained:
            log_reranker(trained, reranker)
        names = [f"p{i}" for i in range(8)]
        evidence = {"eval_hash": "h", "reranked_pass@1": 1.0, "top1_pass": dict.fromkeys(names, 1.0),
                    "pass_rate": dict.fromkeys(names, 0.25)}  # a clear gain: `champion` moves to it
        with tracking.stage_run("evaluate", "r0") as evaluate:
            assert tracking.register_reranker(evaluate, trained.run_id, evidence, "r0") == (1, True)
    return root, uri


@pytest.fixture
def registered(registry, monkeypatch):
    """`registry`, the MLflow URI set for this test as a user sets it (MLFLOW_TRACKING_URI)."""
    import mlflow

    root, uri = registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(root)
    mlflow.set_tracking_uri(uri)
    return root, uri


def candidate_rows() -> tuple[list[Problem], list[dict]]:
    """Problems and candidates: right and wrong completions, some with the `response` a
    sampler writes (scored in place of the completion), and a C++ problem."""
    problems = [*starter("eval")[:3], CPP_ADD]
    candidates = []
    for problem in problems:
        candidates += [{"name": problem.name, "completion": problem.reference},
                       {"name": problem.name, "completion": problem.reference,
                        "response": problem.reference.rstrip() + "\n```"},
                       {"name": problem.name, "completion": "    return None\n"}]
    return problems, candidates


def http_rows(problems: list[Problem], candidates: list[dict]) -> list[dict]:
    """The candidates as the served model's input rows (prompt, completion, language, response)."""
    by_name = {p.name: p for p in problems}
    return [{"prompt": by_name[c["name"]].prompt, "completion": c["completion"],
             "language": by_name[c["name"]].language, **({"response": c["response"]} if "response" in c else {})}
            for c in candidates]


def same_scores(actual: list[float], expected: list[float]) -> bool:
    """Equal to float32 rounding, and in the same order. The scores are float32 logits of the
    same function on the same rows, in another process: there the CPU's matrix kernels may
    add in another order (MKL picks them by how buffers happen to be aligned; seen here as
    0.03268926 against 0.03268934), so bit equality holds only run to run of one command.
    A logit sums products of O(1) activations, so reordering moves it by a few float32
    epsilons (1.2e-7) of those: abs 1e-6. A reranker ranks: the order must be the same."""
    def order(scores):
        return sorted(range(len(scores)), key=scores.__getitem__)

    return actual == pytest.approx(expected, rel=1e-5, abs=1e-6) and order(actual) == order(expected)


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def wait_until_up(url: str, server: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, f"mlflow models serve exited {server.returncode}:\n{log.read_text()[-4000:]}"
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise AssertionError(f"mlflow models serve not up after {seconds} s:\n{log.read_text()[-4000:]}")


def stop(server: subprocess.Popen, seconds: float = 20) -> list[int]:
    """End the server's process group (it leads its own session: the mlflow CLI and the
    uvicorn it starts), SIGKILL what is left after `seconds`. Returns what outlived that."""
    os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while group_members(server.pid) and time.monotonic() < deadline:
        server.poll()  # reap the leader
        time.sleep(0.2)
    left = group_members(server.pid)
    if left:
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=seconds)
    return left


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (zombies are already gone for our purposes)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if entry.name.isdigit() and int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_the_logged_reranker_is_a_pyfunc_with_signature_and_input_example(registered):
    import mlflow
    import pandas as pd
    from mlflow.models import Model

    from coderanker.reranker import Reranker, resolve_model_uri
    from coderanker.serving import input_example, signature

    root, uri = registered
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=CHAMPION, dst_path=str(root / "downloaded")))
    model = Model.load(str(model_dir))
    assert "python_function" in model.flavors and model.signature == signature()
    assert [(c.name, c.type.name, c.required) for c in model.signature.inputs.inputs] == [
        ("prompt", "string", True), ("completion", "string", True),
        ("language", "string", False), ("response", "string", False)]
    (scores,) = model.signature.outputs.inputs  # one float64 per row
    assert (scores.type.name, scores.shape) == ("float64", (-1,))
    example = model.load_input_example(str(model_dir))
    pd.testing.assert_frame_equal(example, input_example())
    assert set(example.columns) <= {c.name for c in signature().inputs.inputs}
    # the HF weights are the pyfunc artifact, and every reranker loader finds them there
    weights = Path(resolve_model_uri(CHAMPION))
    assert (weights / "model.safetensors").exists() and (weights / "coderanker.json").exists()
    served = mlflow.pyfunc.load_model(CHAMPION).predict(example)
    direct = Reranker.load(str(root / "models" / "reranker"))
    problem = Problem(name="add", language="py", prompt=example["prompt"][0], tests="", stop_tokens=())
    assert same_scores(served.tolist(), direct.score(problem, list(example["completion"])))


def test_mlflow_models_serve_scores_rows_as_coderanker_rerank_does(registered, tmp_path):
    """Equal to float32 rounding (see same_scores), not bit for bit: both run
    `Reranker.score_candidates` on the same rows in the same order (the same batches) on the
    same CPU in fp32, and JSON carries each float64 unchanged, but the server is another
    process, whose matrix kernels may add in another order."""
    import mlflow

    root, uri = registered
    problems, candidates = candidate_rows()
    write_jsonl(tmp_path / "problems.jsonl", [p.to_record() for p in problems])
    write_jsonl(tmp_path / "candidates.jsonl", candidates)
    env = {"MLFLOW_TRACKING_URI": uri}
    sh(["coderanker", "rerank", "--model", CHAMPION, "--problems", str(tmp_path / "problems.jsonl"),
        "--candidates", str(tmp_path / "candidates.jsonl"), "--out", str(tmp_path / "scored.jsonl"),
        "--params", str(tmp_path / "none.yaml")], root, env, timeout=600)
    expected = [row["score"] for row in read_jsonl(tmp_path / "scored.jsonl")]
    assert len(set(expected)) == len(expected)  # the completion, the response and the language all count

    port, log = free_port(), tmp_path / "serve.log"
    venv = Path(sys.executable).parent  # as in an activated venv: `mlflow` runs `uvicorn` from PATH
    with open(log, "w") as output:
        server = subprocess.Popen(
            ["mlflow", "models", "serve", "-m", CHAMPION, "--env-manager", "local", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            cwd=root, env={**os.environ, **env, "PATH": f"{venv}:{os.environ['PATH']}"}, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, server, log)
        rows = http_rows(problems, candidates)
        columns = ["prompt", "completion", "language", "response"]
        split = {"columns": columns, "data": [[row.get(c) for c in columns] for row in rows]}
        assert same_scores(post(f"{url}/invocations", {"dataframe_split": split})["predictions"], expected)
        assert same_scores(post(f"{url}/invocations", {"dataframe_records": rows})["predictions"], expected)
        # `language` defaults to py: the same rows without it score the same
        python = [row for row in rows if row["language"] == "py" and "response" not in row]
        bare = [{"prompt": row["prompt"], "completion": row["completion"]} for row in python]
        assert same_scores(post(f"{url}/invocations", {"dataframe_records": bare})["predictions"],
                           post(f"{url}/invocations", {"dataframe_records": python})["predictions"])
        # and the request MLflow stored beside the model is answered
        stored = Path(mlflow.artifacts.download_artifacts(artifact_uri=CHAMPION, dst_path=str(tmp_path / "model")))
        example = json.loads((stored / "serving_input_example.json").read_text())
        assert len(post(f"{url}/invocations", example)["predictions"]) == 2
    finally:
        left = stop(server)
    assert not left, f"mlflow models serve ignored SIGTERM for 20 s: {left}"
