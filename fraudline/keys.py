"""API keys: roles, how a key is hashed for storage, and a CLI that mints new ones."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fraudline.errors import ConfigError

Role = Literal["client", "analyst", "admin"]

# Each role may do everything the roles below it may do.
ROLE_RANK: dict[str, int] = {"client": 0, "analyst": 1, "admin": 2}

KEY_PREFIX = "flk_"
HASH_SCHEME = "hmac-sha256"
# Domain separation only: a key carries 256 random bits, so a fast keyed hash
# cannot be brute-forced, and unlike scrypt it costs microseconds per request.
_HASH_DOMAIN = b"fraudline-api-key-v1"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
_HASH_PATTERN = re.compile(rf"^(?:{HASH_SCHEME}:)?([0-9a-f]{{64}})$")


class ApiKey(BaseModel):
    """One configured key: who holds it, what it may do, and its hash (never the key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN, description="Who holds the key, e.g. alice.")
    role: Role
    hash: str = Field(
        pattern=_HASH_PATTERN.pattern,
        description=f"`{HASH_SCHEME}:<64 hex>`, as `python -m fraudline.keys new` prints.",
    )

    @property
    def digest(self) -> bytes:
        """The raw 32-byte hash, for constant-time comparison."""
        match = _HASH_PATTERN.match(self.hash)
        assert match is not None
        return bytes.fromhex(match.group(1))


def new_key() -> str:
    """A fresh random key: the prefix and 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> bytes:
    """The 32-byte keyed hash of a presented key."""
    return hmac.new(_HASH_DOMAIN, key.encode("utf-8"), hashlib.sha256).digest()


def hash_key(key: str) -> str:
    """The text stored in configuration for a key."""
    return f"{HASH_SCHEME}:{key_digest(key).hex()}"


def config_line(name: str, role: Role, key: str) -> str:
    """One `name:role:hash` entry of `FRAUDLINE_API_KEYS`."""
    return f"{name}:{role}:{hash_key(key)}"


def parse_keys(text: str) -> list[ApiKey]:
    """Parses `FRAUDLINE_API_KEYS`: comma-separated `name:role:hash` entries.

    Raises:
        ConfigError: an entry is malformed or a name appears twice; the message
            names the entry's position, never its hash.
    """
    keys: list[ApiKey] = []
    for position, entry in enumerate(item.strip() for item in text.split(",")):
        if not entry:
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3:
            raise ConfigError(
                f"API key entry {position + 1} has {len(parts)} fields; write "
                "name:role:hash as `python -m fraudline.keys new` prints it"
            )
        name, role, digest = parts
        if role not in ROLE_RANK:
            raise ConfigError(
                f"API key {name!r} has role {role!r}; use one of {', '.join(ROLE_RANK)}"
            )
        if not _HASH_PATTERN.match(digest):
            raise ConfigError(
                f"API key {name!r} has a malformed hash; store `{HASH_SCHEME}:<64 hex>`, "
                "never the key itself"
            )
        keys.append(ApiKey(name=name, role=role, hash=digest))  # type: ignore[arg-type]
    return check_unique(keys)


def check_unique(keys: Iterable[ApiKey]) -> list[ApiKey]:
    """Returns the keys, or raises ConfigError when a name or a hash repeats."""
    listed = list(keys)
    names = [key.name for key in listed]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"API key name {name!r} appears twice; give each key its own")
    if len({key.digest for key in listed}) != len(listed):
        raise ConfigError("two API key entries share one hash; mint a key per holder")
    return listed


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m fraudline.keys new --role analyst --name alice` and `hash`."""
    parser = argparse.ArgumentParser(prog="python -m fraudline.keys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    minted = commands.add_parser("new", help="mint a key; it is printed once, never stored")
    minted.add_argument("--name", required=True, help="who holds the key, e.g. alice")
    minted.add_argument("--role", required=True, choices=list(ROLE_RANK))
    commands.add_parser("hash", help="print the config entry hash of a key read from stdin")
    args = parser.parse_args(argv)

    if args.command == "hash":
        key = sys.stdin.readline().strip()
        if not key:
            parser.error("send the key on standard input")
        sys.stdout.write(hash_key(key) + "\n")
        return 0

    if not re.match(_NAME_PATTERN, args.name):
        parser.error(f"--name {args.name!r}: use letters, digits and . _ - (1-64)")
    key = new_key()
    sys.stdout.write(
        f"API key for {args.name} ({args.role}); shown once, store it now:\n"
        f"  {key}\n"
        "Add this entry to FRAUDLINE_API_KEYS (comma-separated) or the auth config:\n"
        f"  {config_line(args.name, args.role, key)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
