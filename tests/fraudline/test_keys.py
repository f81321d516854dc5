"""API keys are minted once, stored only as hashes, and parsed from the environment."""

from __future__ import annotations

import io
import re
import sys

import pytest

from fraudline.errors import ConfigError
from fraudline.keys import (
    KEY_PREFIX,
    config_line,
    hash_key,
    key_digest,
    main,
    new_key,
    parse_keys,
)


def test_new_keys_are_long_random_and_distinct() -> None:
    keys = {new_key() for _ in range(50)}

    assert len(keys) == 50
    assert all(key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 43 for key in keys)


def test_hash_never_contains_the_key() -> None:
    key = new_key()

    stored = hash_key(key)

    assert key not in stored
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", stored)
    assert bytes.fromhex(stored.split(":")[1]) == key_digest(key)


def test_parse_reads_name_role_and_hash() -> None:
    alice, shop = new_key(), new_key()
    text = f" {config_line('alice', 'analyst', alice)} , {config_line('shop', 'client', shop)},"

    keys = parse_keys(text)

    assert [(k.name, k.role) for k in keys] == [("alice", "analyst"), ("shop", "client")]
    assert keys[0].digest == key_digest(alice)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice:analyst", "has 2 fields"),
        (f"alice:root:{hash_key('k')}", "role 'root'"),
        ("alice:analyst:flk_plaintextkey", "malformed hash"),
        (f"a:client:{hash_key('k1')},a:admin:{hash_key('k2')}", "appears twice"),
        (f"a:client:{hash_key('k1')},b:admin:{hash_key('k1')}", "share one hash"),
    ],
)
def test_bad_entries_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_keys(text)


def test_cli_prints_the_key_once_and_its_config_entry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["new", "--role", "analyst", "--name", "alice"]) == 0

    out = capsys.readouterr().out
    key = re.search(r"^  (flk_\S+)$", out, re.MULTILINE)
    entry = re.search(r"^  (alice:analyst:\S+)$", out, re.MULTILINE)
    assert key and entry
    assert entry.group(1) == config_line("alice", "analyst", key.group(1))
    assert parse_keys(entry.group(1))[0].role == "analyst"


def test_cli_hash_reads_the_key_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("flk_abc\n"))

    assert main(["hash"]) == 0

    assert capsys.readouterr().out.strip() == hash_key("flk_abc")
