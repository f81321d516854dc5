"""The production model's speed on a GPU, without its weights.

    python benchmarks/gpu_llm.py --tensor-parallel-size 1 --out var/gpu_llm.json

Builds a model folder with the architecture of DeepSeek-R1-Distill-Qwen-32B (Qwen2,
64 layers, hidden size 5120) and random weights (`load_format="dummy"`), then sends
the agent's real assessment prompts for the three demo scenarios at 1, 8 and 64
concurrent requests. Prints time to first token, output tokens per second and
end-to-end latency per request; the target is under 2 s per analysed transaction.
Nothing is downloaded: the tokenizer is the project's own tiny one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

# DeepSeek-R1-Distill-Qwen-32B's published architecture (Qwen2ForCausalLM).
R1_32B_ARCHITECTURE: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 5120,
    "intermediate_size": 27648,
    "num_hidden_layers": 64,
    "num_attention_heads": 40,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-05,
    "vocab_size": 152064,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "hidden_act": "silu",
}


def model_folder(out: Path) -> Path:
    """The architecture's config beside the tiny model's tokenizer."""
    from fraudline.tinymodel import build_tiny_model

    tiny = build_tiny_model(PROJECT_ROOT / "var" / "models" / "tiny")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny / name).exists():
            (out / name).write_bytes((tiny / name).read_bytes())
    (out / "config.json").write_text(json.dumps(R1_32B_ARCHITECTURE))
    return out


def agent_prompts() -> list[list[dict[str, str]]]:
    """The assessment messages the agent sends, for the three demo scenarios."""
    from deployments.llm import assessment_messages
    from fraudline.demo import SCENARIOS
    from fraudline.policy import PolicyConfig, decide
    from fraudline.schemas import Evidence, Signal, Transaction

    prompts = []
    for scenario in SCENARIOS.values():
        tx = Transaction.model_validate(scenario)
        evidence = {
            "transaction_risk": Evidence(
                tool="transaction_risk",
                signals=[Signal(code="amount_anomaly", text=f"{tx.amount:,.2f} is unusual",
                                points=30)],
            )
        }
        outcome = decide(evidence, PolicyConfig())
        prompts.append(assessment_messages(tx, outcome, evidence))
    return prompts


async def run_level(engine: Any, prompts: list[Any], concurrency: int, max_tokens: int) -> dict:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)

    async def one(index: int) -> tuple[float, float, int]:
        messages = prompts[index % len(prompts)]
        text = "\n".join(m["content"] for m in messages)
        started = time.perf_counter()
        first = None
        tokens = 0
        async for output in engine.generate(text, params, request_id=uuid.uuid4().hex):
            if first is None:
                first = time.perf_counter() - started
            tokens = len(output.outputs[0].token_ids)
        return first or 0.0, time.perf_counter() - started, tokens

    began = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(concurrency)))
    wall = time.perf_counter() - began
    ttft = [r[0] for r in results]
    e2e = [r[1] for r in results]
    tokens = sum(r[2] for r in results)
    return {
        "concurrency": concurrency,
        "ttft_p50_s": round(statistics.median(ttft), 3),
        "e2e_p50_s": round(statistics.median(e2e), 3),
        "e2e_max_s": round(max(e2e), 3),
        "output_tokens_per_s": round(tokens / wall, 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from vllm import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    folder = model_folder(args.model_dir)
    engine = AsyncLLM.from_engine_args(
        AsyncEngineArgs(
            model=str(folder),
            load_format="dummy",
            tensor_parallel_size=args.tensor_parallel_size,
            max_model_len=args.max_model_len,
            gpu_memory_utilization=0.90,
            dtype="bfloat16",
        )
    )
    prompts = agent_prompts()
    await run_level(engine, prompts, 1, 8)  # warm-up
    levels = [
        await run_level(engine, prompts, concurrency, args.max_tokens)
        for concurrency in (1, 8, 64)
    ]
    engine.shutdown()
    return {"model": "DeepSeek-R1-Distill-Qwen-32B architecture, dummy weights",
            "max_tokens": args.max_tokens, "levels": levels}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--model-dir", type=Path, default=PROJECT_ROOT / "var" / "r1-32b-dummy")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "var" / "gpu_llm.json")
    args = parser.parse_args()
    figures = asyncio.run(main_async(args))
    text = json.dumps(figures, indent=2)
    sys.stdout.write(text + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
