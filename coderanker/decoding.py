"""The decode loop behind `coderanker.generation.generate`.

Two things make it several times faster than calling `model.generate` on a batch of
independent sequences, on a CPU as on a GPU:

- Shared prefill. The N samples of a problem start from the same prompt, which is most of
  the tokens (a chat prompt of about 250 tokens against answers of 30-90). The prompt runs
  through the model once per problem and its key/value cache is copied to the N rows.
- Rows leave the batch when they finish (end of sequence or a stop string), so the batch
  shrinks instead of decoding padding until its longest answer ends.

Sampling is temperature plus nucleus (top-p), from a generator seeded per batch, so the
same model, prompts and config give the same tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from coderanker.problems import Problem

#: Tokens of a row's tail decoded to look for stop strings (longer than any stop string).
STOP_WINDOW = 16
#: Nucleus sampling looks at this many most likely tokens first (all when they hold < top_p).
TOP_P_CANDIDATES = 256


@dataclass(frozen=True)
class DecodeRequest:
    """`copies` answers to one problem's prompt, sampled or greedy."""

    problem: Problem
    copies: int
    greedy: bool


def pack(requests: list[DecodeRequest], batch_size: int) -> list[list[DecodeRequest]]:
    """Consecutive requests of the same kind, up to batch_size rows a group (a request with
    more copies than that forms a group of its own)."""
    groups: list[list[DecodeRequest]] = []
    rows = 0
    for request in requests:
        current = groups[-1] if groups else None
        if current and current[0].greedy == request.greedy and rows + request.copies <= batch_size:
            current.append(request)
            rows += request.copies
        else:
            groups.append([request])
            rows = request.copies
    return groups


def decode(model, tokenizer, requests: list[DecodeRequest], style: str,
           config) -> Iterator[tuple[DecodeRequest, list[tuple[str, bool]]]]:
    """Each request with its answers as (text, truncated), in request order."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    model.eval()
    for index, group in enumerate(pack(requests, config.batch_size)):
        answers = decode_group(model, tokenizer, group, style, config, seed=config.seed + index)
        yield from zip(group, answers, strict=True)


def read_generation_config(model_dir):
    """A model directory's generation config, read without loading the model (transformers
    derives one from the model config when there is no generation_config.json)."""
    from transformers import AutoConfig, GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_dir)
    except OSError:
        return GenerationConfig.from_model_config(AutoConfig.from_pretrained(model_dir))


def eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return {i for i in ids if i is not None}


def decode_group(model, tokenizer, group: list[DecodeRequest], style: str, config,
                 seed: int) -> list[list[tuple[str, bool]]]:
    import torch

    from coderanker.generation import prompt_ids

    device = model.device
    prompts = [prompt_ids(r.problem, tokenizer, style) for r in group]
    width = max(len(p) for p in prompts)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = reserved_cache(model, width + config.max_new_tokens)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1, :]
        source = torch.arange(len(group), device=device).repeat_interleave(
            torch.tensor([r.copies for r in group], device=device))
        cache.batch_select_indices(source)  # the shared prefill, copied to every row
        logits, mask, position = logits[source], mask[source], positions[source, -1] + 1
        rows = _Rows(tokenizer, [group[i] for i in source.tolist()], style, eos_ids(model, tokenizer))
        for step in range(config.max_new_tokens):
            tokens = sample_tokens(logits, group[0].greedy, config.temperature, config.top_p, generator)
            rows.advance(tokens.tolist())
            if rows.all_done() or step == config.max_new_tokens - 1:
                break
            live = rows.live_positions()
            if len(rows.present) - len(live) >= max(1, len(rows.present) // 8):  # compact the batch
                kept = torch.tensor(live, device=device)
                cache.batch_select_indices(kept)
                tokens, mask, position = tokens[kept], mask[kept], position[kept]
                rows.keep(live)
            mask = torch.cat([mask, mask.new_ones(len(rows.present), 1)], dim=1)
            logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=position[:, None],
                           cache=cache, use_cache=True).logits[:, -1, :]
            position = position + 1
    answers = rows.answers()
    out, start = [], 0
    for request in group:
        out.append(answers[start : start + request.copies])
        start += request.copies
    return out


class _Rows:
    """Tokens of every row, which rows are in the batch (`present`, in batch order), which
    have finished (a finished row may stay in the batch until the next compaction; what it
    decodes then is ignored), and whether each ended before the token budget ran out."""

    def __init__(self, tokenizer, requests: list[DecodeRequest], style: str, eos: set[int]):
        from coderanker.generation import stop_strings

        self.tokenizer, self.eos = tokenizer, eos
        self.stops = [stop_strings(r.problem, style) for r in requests]
        self.tokens: list[list[int]] = [[] for _ in requests]
        self.finished = [False] * len(requests)
        self.present = list(range(len(requests)))

    def advance(self, tokens: list[int]) -> None:
        """Record each unfinished row's new token and whether it ended the row."""
        live = [(row, token) for row, token in zip(self.present, tokens, strict=True) if not self.finished[row]]
        tails = self.tokenizer.batch_decode([self.tokens[row][-STOP_WINDOW + 1 :] + [token] for row, token in live],
                                            skip_special_tokens=True, clean_up_tokenization_spaces=False)
        for (row, token), tail in zip(live, tails, strict=True):
            if token in self.eos:
                self.finished[row] = True
                continue
            self.tokens[row].append(token)
            self.finished[row] = self._stopped(row, tail)

    def all_done(self) -> bool:
        return all(self.finished[row] for row in self.present)

    def live_positions(self) -> list[int]:
        return [position for position, row in enumerate(self.present) if not self.finished[row]]

    def keep(self, positions: list[int]) -> None:
        self.present = [self.present[position] for position in positions]

    def _stopped(self, row: int, tail: str) -> bool:
        stops = self.stops[row]
        if stops is None:  # chat: the answer's code block has opened and closed
            text = self.tokenizer.decode(self.tokens[row], clean_up_tokenization_spaces=False)
            return "```" in tail and text.count("```") >= 2
        return any(stop in tail for stop in stops)

    def answers(self) -> list[tuple[str, bool]]:
        texts = self.tokenizer.batch_decode(self.tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return [(text, not done) for text, done in zip(texts, self.finished, strict=True)]


def reserved_cache(model, capacity: int):
    """A key/value cache that writes each step into memory reserved for `capacity` tokens.

    transformers' DynamicCache concatenates every layer's keys and values at every step,
    copying the whole cache each time: that was a third of the decode time here (as much
    as the matrix products). Models with sliding-window or other special layers keep the
    DynamicCache."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model.config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [_ReservedLayer(capacity) for _ in cache.layers]
    return cache


def _reserved_layer_class():
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        """A DynamicLayer whose keys and values are views of preallocated buffers."""

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity, self.length = capacity, 0

        def update(self, key_states, value_states, *args, **kwargs):
            import torch

            if not self.is_initialized:
                self.device, self.is_initialized = key_states.device, True
                shape = (*key_states.shape[:2], max(self.capacity, key_states.shape[-2]), key_states.shape[-1])
                self.key_buffer = torch.empty(shape, dtype=key_states.dtype, device=key_states.device)
                self.value_buffer = torch.empty(shape, dtype=value_states.dtype, device=value_states.device)
            end = self.length + key_states.shape[-2]
            if end > self.key_buffer.shape[-2]:
                raise RuntimeError(f"key/value cache full: {end} tokens, {self.key_buffer.shape[-2]} reserved")
            self.key_buffer[..., self.length : end, :] = key_states
            self.value_buffer[..., self.length : end, :] = value_states
            self.length = end
            self.keys, self.values = self.key_buffer[..., :end, :], self.value_buffer[..., :end, :]
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:
            if self.is_initialized:
                self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
                self.keys = self.key_buffer[..., : self.length, :]
                self.values = self.value_buffer[..., : self.length, :]

        def batch_repeat_interleave(self, repeats: int) -> None:
            import torch

            if self.is_initialized:
                self.batch_select_indices(torch.arange(self.key_buffer.shape[0]).repeat_interleave(repeats))

    return ReservedLayer


def _ReservedLayer(capacity: int):  # noqa: N802 - a factory standing in for the lazily built class
    global _RESERVED_LAYER
    if _RESERVED_LAYER is None:
        _RESERVED_LAYER = _reserved_layer_class()
    return _RESERVED_LAYER(capacity)


_RESERVED_LAYER = None


def sample_tokens(logits, greedy: bool, temperature: float, top_p: float, generator):
    """One token per row: argmax, or a draw from the temperature-scaled nucleus."""
    import torch

    if greedy:
        return logits.argmax(-1)
    probs = (logits.float() / temperature).softmax(-1)
    if top_p >= 1.0:
        return torch.multinomial(probs, 1, generator=generator)[:, 0]
    k = min(TOP_P_CANDIDATES, probs.shape[-1])
    top, index = probs.topk(k)
    if bool((top.sum(-1) < top_p).any()):  # a flat distribution: the nucleus is wider than k
        top, index = probs.sort(descending=True)
    keep = (top.cumsum(-1) - top) < top_p  # a token stays while the mass before it is < top_p
    choice = torch.multinomial(top * keep, 1, generator=generator)
    return index.gather(-1, choice)[:, 0]
