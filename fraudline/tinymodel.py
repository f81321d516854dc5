"""Builds a tiny Llama-architecture chat model locally, for tests and CI.

The weights are random and the tokenizer is trained on text written here, so the
model loads and generates through the real vLLM engine without any download. What
it says is noise; the structured-output grammar keeps its JSON well formed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

logger = logging.getLogger(__name__)

MODEL_NAME = "fraudline-tiny-llama"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_WORDS = (
    "the transaction amount merchant category customer device address location travel "
    "risk score approve review block because evidence unusual known unknown new card "
    "present distance speed hours minutes km policy fraud analyst summary confidence "
    "key factors recommended action low medium high impossible history"
).split()


def _corpus(lines: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    text = []
    for _ in range(lines):
        words = rng.choices(_WORDS, k=rng.randint(6, 20))
        record = {"summary": " ".join(words), "confidence": round(rng.random(), 2)}
        text.append(" ".join(words))
        text.append(json.dumps(record))
    text.append("".join(chr(c) for c in range(32, 127)))
    return text


def build_tiny_model(out_dir: Path, *, vocab_size: int = 1024, seed: int = 0) -> Path:
    """Writes a Hugging Face model folder that vLLM can serve, and returns it.

    The folder is rebuilt only when its config is missing, so repeated test runs
    reuse it.
    """
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and (out_dir / "tokenizer.json").exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    # Heavy imports stay here so importing this module is cheap.
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_corpus(2000, seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)

    torch.manual_seed(seed)
    # The CPU attention backend needs head_dim >= 32: 64 / 2 heads.
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=4096,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "generation_config.json").write_text(
        json.dumps({"eos_token_id": fast.eos_token_id, "max_new_tokens": 64})
    )
    logger.info("built %s in %s", MODEL_NAME, out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the model into")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    build_tiny_model(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
