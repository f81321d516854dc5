"""Sends the three demo scenarios to a running Fraudline and shows the answers.

    python -m fraudline.scenarios --url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import sys
import uuid

import httpx

from fraudline.demo import EXPECTED_DECISIONS, SCENARIOS


def run(url: str, fresh_ids: bool) -> int:
    """Returns the number of scenarios whose decision was not the expected one."""
    wrong = 0
    with httpx.Client(base_url=url, timeout=180) as client:
        # An earlier run's block left a hold on the card; lift it as an analyst would.
        for customer in sorted({s["customer_id"] for s in SCENARIOS.values()}):
            released = client.delete(
                f"/v1/customers/{customer}/hold",
                params={"actor": "demo", "reason": "demo rerun"},
            )
            if released.status_code == 200 and released.json().get("released"):
                sys.stdout.write(f"released the hold an earlier run left on {customer}\n")
        for name, scenario in SCENARIOS.items():
            body = dict(scenario)
            if fresh_ids:
                body["transaction_id"] = f"{scenario['transaction_id']}-{uuid.uuid4().hex[:6]}"
            response = client.post("/v1/analyze", json=body)
            response.raise_for_status()
            result = response.json()
            expected = EXPECTED_DECISIONS[name]
            mark = "ok" if result["decision"] == expected else f"EXPECTED {expected}"
            wrong += result["decision"] != expected
            lines = [
                f"{name}: {result['decision']} (risk {result['risk_score']:g}, "
                f"{result['risk_level']}) [{mark}] in {result['latency_ms']['total']:.0f} ms",
                *(f"  - {reason['text']}" for reason in result["reasons"]),
                *(
                    f"  * {action['kind']}: {action['state']} {action.get('id') or ''}"
                    for action in result["actions"]
                ),
                f"  explanation ({result['explanation']['model_status']}): "
                f"{result['explanation']['text'][:300]}",
            ]
            sys.stdout.write("\n".join(lines) + "\n")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the three demo scenarios.")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--same-ids", action="store_true", help="reuse the scenarios' fixed transaction ids"
    )
    args = parser.parse_args(argv)
    return 1 if run(args.url, fresh_ids=not args.same_ids) else 0


if __name__ == "__main__":
    raise SystemExit(main())
