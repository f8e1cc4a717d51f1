"""The reranker as an MLflow model (`mlflow.pyfunc`): what a train_reranker run logs at its
artifact path `reranker`, what the registry holds as `coderanker-reranker`, and what
`mlflow models serve -m models:/coderanker-reranker@champion --env-manager local` answers.

Input: a DataFrame of candidates, one per row, with string columns
- `prompt`: the problem's prompt (MultiPL-E's: the code the completion continues);
- `completion`: the candidate;
- `language` (optional, default py): MultiPL-E's code; the chat template names it;
- `response` (optional): the generated text to score when it differs from the completion
  (`coderanker sample` writes both: in prefill style the response ends with the closing fence).
Output: one score per row (float64: the head's float32 logit, plus the likelihood prior's
weight times the response's log-probability where the reranker has one), higher for a
candidate more likely to pass. Rows go through `Reranker.score_candidates`, the call
`coderanker rerank` makes, so both give the same rows the same scores (same batch size and
length limit: the model config, default that of `coderanker rerank`; across processes to
float32 rounding, as CPU matrix kernels may add in another order).

The Hugging Face directory is the pyfunc artifact `hf_model`; the code is the installed
coderanker package, so serve in the project's environment (`--env-manager local`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from coderanker.problems import Problem
from coderanker.reranker import BATCH_SIZE, HF_ARTIFACT, MAX_LENGTH
from coderanker.tracking import RERANKER_ARTIFACT

DEFAULT_LANGUAGE = "py"
#: Settings the served model scores with; override with `model_config` when loading.
SCORING = {"batch_size": BATCH_SIZE, "max_length": MAX_LENGTH, "device": "auto", "dtype": "auto"}
LINKED_BYTES = 1 << 20  # files this large (the weights) are hard-linked into the model, never copied
EXAMPLE_PROMPT = ('def add(a: int, b: int) -> int:\n'
                  '    """Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    """\n')


class RerankerModel(PythonModel):
    """pyfunc wrapper of `coderanker.reranker.Reranker` (see the module's docstring)."""

    def load_context(self, context) -> None:
        from coderanker.reranker import Reranker
        from coderanker.runtime import Placement

        config = {**SCORING, **(context.model_config or {})}
        self.reranker = Reranker.load(context.artifacts[HF_ARTIFACT],
                                      placement=Placement.of(config["device"], config["dtype"]),
                                      batch_size=int(config["batch_size"]), max_length=int(config["max_length"]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        problems, candidates = candidates_of(model_input)
        return np.asarray(self.reranker.score_candidates(problems, candidates), dtype=np.float64)


def candidates_of(frame) -> tuple[dict[str, Problem], list[dict]]:
    """The rows as (problems by name, candidate records) for `Reranker.score_candidates`: one
    problem per distinct (language, prompt), which is all the reranker's text takes of it."""
    problems: dict[str, Problem] = {}
    candidates = []
    for row in frame.to_dict("records"):
        language = text(row.get("language")) or DEFAULT_LANGUAGE
        name = f"{language}:{row['prompt']}"
        if name not in problems:
            problems[name] = Problem(name=name, language=language, prompt=row["prompt"], tests="", stop_tokens=())
        candidate = {"name": name, "completion": row["completion"]}
        if text(row.get("response")):
            candidate["response"] = row["response"]
        candidates.append(candidate)
    return problems, candidates


def text(value) -> str | None:
    """A cell of an optional column: its string, or None where the row has none (NaN, None)."""
    return value if isinstance(value, str) else None


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([ColSpec("string", "prompt"), ColSpec("string", "completion"),
                       ColSpec("string", "language", required=False), ColSpec("string", "response", required=False)]),
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1,))]))


def input_example():
    """Two candidates for one problem: one right, one wrong."""
    return pd.DataFrame({"prompt": [EXAMPLE_PROMPT] * 2, "completion": ["    return a + b\n", "    return a - b\n"],
                         "language": [DEFAULT_LANGUAGE] * 2})


def requirements() -> list[str]:
    """What the model needs besides the coderanker package itself (not on any index)."""
    from importlib.metadata import version

    return [f"{name}=={version(name).split('+')[0]}" for name in ("mlflow", "torch", "transformers", "pandas")]


def save_model(model_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write a reranker directory as an MLflow model at `path` (new; best on the same file
    system as `model_dir`). Its large files are hard links (copies only across file
    systems): MLflow would otherwise copy the weights once more before they are logged."""
    import mlflow.pyfunc
    from mlflow.models import Model
    from mlflow.utils.file_utils import get_total_file_size

    model_dir, path = Path(model_dir), Path(path)
    large = {p for p in model_dir.rglob("*") if p.is_file() and p.stat().st_size >= LINKED_BYTES}
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".small-") as tmp:
        small = Path(tmp) / HF_ARTIFACT
        shutil.copytree(model_dir, small, ignore=lambda d, names: [n for n in names if Path(d, n) in large])
        mlflow.pyfunc.save_model(path, python_model=RerankerModel(), artifacts={HF_ARTIFACT: str(small)},
                                 signature=signature(), input_example=input_example(), model_config=dict(SCORING),
                                 pip_requirements=requirements())
    model = Model.load(str(path))
    artifact = model.flavors["python_function"]["artifacts"][HF_ARTIFACT]
    for source in large:
        target = path / artifact["path"] / source.relative_to(model_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    artifact["uri"] = str(model_dir.resolve())  # what it was made from, not the temporary copy
    model.model_size_bytes = get_total_file_size(str(path))
    model.save(str(path / "MLmodel"))
    return path


def log_reranker(run, model_dir: str | os.PathLike) -> None:
    """Log a reranker directory on a stage run (coderanker.tracking.StageRun) as the MLflow
    model at artifact path `reranker`, the source `register_reranker` registers."""
    model_dir = Path(model_dir)
    with tempfile.TemporaryDirectory(dir=model_dir.parent, prefix=".mlflow-model-", suffix=".partial") as tmp:
        run.log_artifact(save_model(model_dir, Path(tmp) / RERANKER_ARTIFACT), RERANKER_ARTIFACT)
