"""Browser sessions without a daemon: signed with the token, bound to the port, ended by
their expiry, a logout or a new token; the logouts outlive the process."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ccd.auth import SESSION_TTL, Sessions, load_or_create_token


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    return tmp_path / "ccd"


def sessions(port: int = 8000, clock: Clock | None = None) -> Sessions:
    return Sessions(load_or_create_token(), port, clock or Clock())


def test_each_login_is_its_own_session(config: Path) -> None:
    s = sessions()
    first, second = s.open(), s.open()
    assert first != second and s.valid(first) and s.valid(second)
    assert s.cookie == "ccd_session_8000"


def test_a_session_ends_after_its_time(config: Path) -> None:
    clock = Clock()
    s = sessions(clock=clock)
    value = s.open()
    clock.now += SESSION_TTL - 1
    assert s.valid(value)
    clock.now += 1
    assert not s.valid(value)


def test_a_forged_or_foreign_session_is_refused(config: Path) -> None:
    s = sessions()
    value = s.open()
    session, expiry, signature = value.split(".")
    assert not s.valid(f"{session}.{int(expiry) + 86400}.{signature}")
    other = "B" if session[0] == "A" else "A"
    assert not s.valid(f"{other}{session[1:]}.{expiry}.{signature}")
    assert not s.valid(value + "x") and not s.valid("") and not s.valid("é" * 40)
    assert not sessions(port=8001).valid(value)  # another daemon's port


def test_a_logout_ends_that_session_only_and_outlives_the_process(config: Path) -> None:
    s = sessions()
    gone, kept = s.open(), s.open()
    s.close(gone)
    assert not s.valid(gone) and s.valid(kept)
    again = sessions()  # the daemon restarted
    assert not again.valid(gone) and again.valid(kept)
    listed = config / "revoked-sessions"
    assert stat.S_IMODE(listed.stat().st_mode) == 0o600


def test_the_revocation_list_forgets_sessions_that_have_expired(config: Path) -> None:
    clock = Clock()
    s = sessions(clock=clock)
    old = s.open()
    s.close(old)
    clock.now += SESSION_TTL
    s.close(s.open())
    assert len((config / "revoked-sessions").read_text().splitlines()) == 1


def test_a_new_token_ends_every_session_and_login_link(config: Path) -> None:
    s = sessions()
    value, code = s.open(), s.new_code()
    old_token = s.token
    s.rotate()
    assert s.token != old_token and s.token_matches(s.token)
    assert not s.token_matches(old_token)
    assert (config / "token").read_text().strip() == s.token
    assert stat.S_IMODE((config / "token").stat().st_mode) == 0o600
    assert not s.valid(value) and not s.redeem(code)
    assert not sessions().valid(value)  # a daemon started with the new token


def test_non_ascii_credentials_simply_do_not_match(config: Path) -> None:
    s = sessions()
    assert not s.token_matches("\xff\xfe") and not s.valid("\xb2\xb3.\xb9")
