"""Console accounts: Argon2id hashes, password rules, lockout after failures, disabling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dojoguard.console.accounts import AccountError, Accounts, LoginRefused

NOW = datetime(2026, 12, 7, 10, tzinfo=UTC)
GOOD = "three random words here"


@pytest.fixture
def accounts(tmp_path):
    opened = Accounts(tmp_path / "console.sqlite")
    yield opened
    opened.close()


def login(accounts, name, password, at=NOW):
    return accounts.login(name, password, at, failures_allowed=5, lock_for=timedelta(minutes=15))


def test_passwords_are_kept_as_argon2id_hashes_only(accounts, tmp_path):
    accounts.add("j.patel", "headteacher", GOOD, NOW)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("console.sqlite*"))
    assert GOOD.encode() not in raw and b"$argon2id$" in raw
    assert (tmp_path / "console.sqlite").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("name", "role", "password", "says"), [
    ("j.patel", "headteacher", "short", "at least 12 characters"),
    ("j.patel", "headteacher", "j.patel-is-my-password", "must not contain the account name"),
    ("j patel", "headteacher", GOOD, "cannot be an account name"),
    ("j.patel", "caretaker", GOOD, "no role 'caretaker'"),
])
def test_bad_accounts_are_refused_with_the_reason(accounts, name, role, password, says):
    with pytest.raises(AccountError, match=says):
        accounts.add(name, role, password, NOW)
    assert accounts.all() == []


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one_until_the_lock_ends(accounts):
    accounts.add("j.patel", "leader", GOOD, NOW)
    for attempt in range(4):
        with pytest.raises(LoginRefused, match="wrong name or password"):
            login(accounts, "j.patel", f"guess {attempt}")
    with pytest.raises(LoginRefused) as locked:
        login(accounts, "j.patel", "guess 4")
    assert locked.value.locked_now and locked.value.locked_until == NOW + timedelta(minutes=15)
    with pytest.raises(LoginRefused, match="locked"):
        login(accounts, "j.patel", GOOD, NOW + timedelta(minutes=14))
    assert login(accounts, "j.patel", GOOD, NOW + timedelta(minutes=16)).failures == 0


def test_a_right_password_resets_the_count(accounts):
    accounts.add("j.patel", "leader", GOOD, NOW)
    for _ in range(4):
        with pytest.raises(LoginRefused):
            login(accounts, "j.patel", "nope")
    login(accounts, "j.patel", GOOD)
    for _ in range(4):
        with pytest.raises(LoginRefused, match="wrong name or password"):
            login(accounts, "j.patel", "nope")


def test_an_unknown_name_is_refused_like_a_wrong_password(accounts):
    with pytest.raises(LoginRefused, match="^wrong name or password$"):
        login(accounts, "nobody", GOOD)


def test_disabling_or_a_new_password_changes_the_generation_that_logins_carry(accounts):
    first = accounts.add("j.patel", "dpo", GOOD, NOW)
    assert accounts.set_password("j.patel", "another three words").generation == first.generation + 1
    disabled = accounts.disable("j.patel")
    assert disabled.disabled and disabled.generation == first.generation + 2
    with pytest.raises(LoginRefused, match="^wrong name or password$"):  # never confirms the password
        login(accounts, "j.patel", "another three words")
