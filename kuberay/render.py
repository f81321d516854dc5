"""Copies configs/production.yaml into the RayService manifest as its serveConfigV2.

Run `python kuberay/render.py` after editing the serve config, or
`python kuberay/render.py --check` to fail when the manifest is stale.
The copy is textual, so the comments in both files survive.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SERVE_CONFIG = ROOT / "configs" / "production.yaml"
MANIFEST = ROOT / "kuberay" / "rayservice.yaml"

BLOCK_KEY = "  serveConfigV2: |"
BLOCK_INDENT = " " * 4


def render(manifest_text: str, serve_config_text: str) -> str:
    """The manifest with its serveConfigV2 block replaced by the serve config.

    Raises:
        ValueError: The manifest has no `serveConfigV2: |` block under `spec`.
    """
    lines = manifest_text.splitlines()
    try:
        start = lines.index(BLOCK_KEY) + 1
    except ValueError:
        raise ValueError(
            f"{MANIFEST.name} has no line {BLOCK_KEY.strip()!r} under spec; "
            "restore it as a literal block"
        ) from None
    end = start
    # The block runs until the next line indented no deeper than its key.
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(BLOCK_INDENT)):
        end += 1
    block = [BLOCK_INDENT + line if line.strip() else "" for line in serve_config_text.splitlines()]
    return "\n".join(lines[:start] + block + lines[end:]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the manifest is out of date"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    current = MANIFEST.read_text()
    wanted = render(current, SERVE_CONFIG.read_text())
    if current == wanted:
        logger.info("%s is up to date", MANIFEST.relative_to(ROOT))
        return 0
    if args.check:
        logger.error("%s is stale: run `python kuberay/render.py`", MANIFEST.relative_to(ROOT))
        return 1
    MANIFEST.write_text(wanted)
    logger.info("wrote %s", MANIFEST.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
