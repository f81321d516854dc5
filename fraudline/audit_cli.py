"""Command line check of the audit chain: `python -m fraudline.audit_cli verify`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from fraudline.audit import verify_chain
from fraudline.db import make_engine, make_sessions

EXIT_OK, EXIT_BROKEN, EXIT_UNREADABLE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns 0 when the chain holds, 1 when broken, 2 on errors."""
    parser = argparse.ArgumentParser(
        prog="python -m fraudline.audit_cli",
        description="Checks Fraudline's hash-chained audit trail.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify", help="walk the chain from its first entry and name the first bad one"
    )
    verify.add_argument(
        "--database-url",
        default="sqlite:///var/fraudline.db",
        help="SQLite or PostgreSQL URL of the records database (default: %(default)s)",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    try:
        report = verify_chain(make_sessions(make_engine(args.database_url)))
    except SQLAlchemyError as error:
        sys.stderr.write(
            f"cannot read the audit trail ({type(error).__name__}); check --database-url "
            "and that the schema exists\n"
        )
        return EXIT_UNREADABLE

    if args.json:
        sys.stdout.write(json.dumps(report.__dict__) + "\n")
    elif report.ok:
        sys.stdout.write(
            f"OK: {report.entries_checked} entries verified, head {report.head_hash}\n"
        )
    else:
        sys.stdout.write(
            f"BROKEN at entry {report.first_bad_id}: {report.reason} "
            f"({report.entries_checked} entries verified before it)\n"
        )
    return EXIT_OK if report.ok else EXIT_BROKEN


if __name__ == "__main__":
    sys.exit(main())
