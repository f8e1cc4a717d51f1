"""The reranker: a causal LM with a scalar head (sequence classification, one output).

Its input is exactly what the PPO reward model sees: the generator's model input (chat
template or raw prompt) followed by the generated response and the end-of-sequence token,
tokenised as the two parts PPO concatenates.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from coderanker.problems import Problem

log = logging.getLogger(__name__)


def init_reranker(base_dir: str | os.PathLike, out_dir: str | os.PathLike, seed: int = 0, layers: int = 0) -> Path:
    """A fresh reranker on the generator's base (same tokenizer), scalar head seeded.

    `layers` > 0 keeps only the base's bottom `layers` transformer layers (0: all). Scoring,
    training, and PPO's reward and value passes then cost that fraction of the base's; a
    classifier on a pretrained model's middle layers loses little (measured on the cpu
    profile: the bottom 10 of SmolLM2's 30 layers reached eval ROC-AUC 0.68 against 0.59
    for all 30 with the top 6 trained, at 1.5x the training speed)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if layers < 0:
        raise ValueError(f"reranker layers must be >= 0, got {layers}")
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    backbone = getattr(model, model.base_model_prefix)
    if 0 < layers < len(backbone.layers):
        backbone.layers = backbone.layers[:layers]
        model.config.num_hidden_layers = layers
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = model.config.layer_types[:layers]
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


def resolve_model_uri(uri: str) -> str:
    """A local directory for a path or an MLflow URI (models:/name@alias, runs:/id/path)."""
    if "://" in uri or uri.startswith(("models:/", "runs:/")):
        import mlflow

        from coderanker.tracking import tracking_uri

        mlflow.set_tracking_uri(tracking_uri())  # MLFLOW_TRACKING_URI, else ./mlflow.db
        return mlflow.artifacts.download_artifacts(artifact_uri=uri)
    if not Path(uri).is_dir():
        raise FileNotFoundError(f"{uri}: no reranker directory there")
    return uri


class Reranker:
    """Scores (problem, response) pairs; higher means more likely to pass."""

    def __init__(self, model, tokenizer, prompt_style: str = "auto", max_length: int = 1024, batch_size: int = 8):
        from coderanker.generation import resolve_style

        self.model, self.tokenizer = model.eval(), tokenizer
        self.style = resolve_style(prompt_style, tokenizer)
        self.max_length, self.batch_size = max_length, batch_size

    @classmethod
    def load(cls, uri: str, **kwargs) -> Reranker:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model_uri(uri)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        return cls(model, tokenizer, **kwargs)

    def encode(self, problem: Problem, response: str) -> list[int]:
        return encode_pair(self.tokenizer, self.style, problem, response, self.max_length)

    def score_ids(self, sequences: list[list[int]]) -> list[float]:
        import torch

        pad = self.tokenizer.pad_token_id
        scores: list[float] = []
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = [sequences[i] for i in order[start : start + self.batch_size]]
                width = max(len(ids) for ids in batch)
                ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch])
                mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch])
                scores += self.model(input_ids=ids, attention_mask=mask).logits[:, 0].tolist()
        result = [0.0] * len(sequences)
        for position, index in enumerate(order):
            result[index] = scores[position]
        return result

    def score(self, problem: Problem, responses: list[str]) -> list[float]:
        return self.score_ids([self.encode(problem, response) for response in responses])

    def score_candidates(self, problems: dict[str, Problem], candidates: list[dict]) -> list[float]:
        """Scores for candidate records (which carry `name` and `response`)."""
        return self.score_ids([self.encode(problems[c["name"]], candidate_response(c)) for c in candidates])


def candidate_response(candidate: dict) -> str:
    """The generated text to score; candidates made outside coderanker may carry only a completion."""
    return candidate.get("response") or candidate["completion"]


def encode_pair(tokenizer, style: str, problem: Problem, response: str, max_length: int) -> list[int]:
    """Token ids of model input + response + EOS, as PPO's reward model sees them
    (the prompt is kept whole; the response is cut to fit max_length)."""
    from coderanker.generation import model_input

    query = tokenizer(model_input(problem, tokenizer, style), add_special_tokens=style != "chat")["input_ids"]
    answer = tokenizer(response, add_special_tokens=False)["input_ids"]
    room = max(max_length - len(query) - 1, 0)
    return query + answer[:room] + [tokenizer.eos_token_id]
