"""Console accounts: who may log in, with which role; Argon2id password hashes; lockout after failures.

Kept in their own SQLite file (``console.database``), owner-only, beside the
other stores. Nothing here is ever written to the audit log but account
names and roles; the console records each action there under the name.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dojoguard.storage import Database, Migration, SQLiteDatabase, migrations


class Role(enum.StrEnum):
    HEADTEACHER = "headteacher"
    LEADER = "leader"
    DPO = "dpo"
    IT = "it"


ROLE_TITLES = {Role.HEADTEACHER: "Headteacher", Role.LEADER: "Senior leader", Role.DPO: "Data protection officer",
               Role.IT: "IT staff"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
# NCSC: length over composition rules; 12 characters keeps out the shortest guesses.
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
# Argon2id with the RFC 9106 "second recommended" parameters (64 MiB, 3 passes): about 0.1 s here.
HASHER = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)
# Checked against when the name is unknown, so a wrong name takes as long as a wrong password.
_DUMMY = HASHER.hash("not a password anyone has")


class AccountError(ValueError):
    """A change to accounts that is refused, with the reason."""


@dataclass(frozen=True)
class Account:
    name: str
    role: Role
    disabled: bool
    failures: int
    locked_until: datetime | None
    created_at: datetime
    last_login: datetime | None
    # Changes when the password changes or the account is disabled: every login made before is ended.
    generation: int
    # Which schools of the trust's central store the account may read (docs/trust.md): a school's id,
    # "*" for every school, None for none (the console's Trust page is closed to it).
    trust_scope: str | None = None


class LoginRefused(Exception):
    """Why a login failed; ``locked_until`` is set when the account is (or has just been) locked."""

    def __init__(self, message: str, locked_until: datetime | None = None, locked_now: bool = False):
        super().__init__(message)
        self.locked_until = locked_until
        self.locked_now = locked_now


def _m1_accounts(db: Database) -> None:
    db.execute("""CREATE TABLE accounts (
        name TEXT PRIMARY KEY COLLATE NOCASE, role TEXT NOT NULL, hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, locked_until TEXT,
        created_at TEXT NOT NULL, last_login TEXT, generation INTEGER NOT NULL DEFAULT 1)""")


def _m2_trust_scope(db: Database) -> None:
    db.execute("ALTER TABLE accounts ADD COLUMN trust_scope TEXT")


MIGRATIONS = (Migration("1-accounts", _m1_accounts), Migration("2-trust-scope", _m2_trust_scope))
_COLUMNS = "name, role, disabled, failures, locked_until, created_at, last_login, generation, trust_scope"
TRUST_WIDE = "*"
_SCHOOL = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Accounts:
    def __init__(self, path: Path):
        self.database = SQLiteDatabase.open(path, busy_timeout_s=5.0)
        try:
            migrations.migrate(self.database, MIGRATIONS, what="the console accounts")
        except BaseException:
            self.database.close()
            raise

    def close(self) -> None:
        self.database.close()

    def add(self, name: str, role: str, password: str, now: datetime) -> Account:
        if not NAME.match(name):
            raise AccountError(f"{name!r} cannot be an account name: use 2-64 letters, digits, '.', '_', '-' or "
                               "'@', starting with a letter or digit (e.g. j.patel)")
        try:
            role = Role(role)
        except ValueError:
            raise AccountError(f"no role {role!r}; the roles are {', '.join(r.value for r in Role)}") from None
        check_password(password, name)
        with self.database.transaction():
            if self.database.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)).fetchone():
                raise AccountError(f"there is already an account {name!r}")
            self.database.execute("INSERT INTO accounts (name, role, hash, created_at) VALUES (?, ?, ?, ?)",
                                  (name, role.value, HASHER.hash(password), now.isoformat()))
        return self.get(name)

    def get(self, name: str) -> Account | None:
        row = self.database.execute(f"SELECT {_COLUMNS} FROM accounts WHERE name = ?", (name,)).fetchone()
        return _account(row) if row else None

    def all(self) -> list[Account]:
        return [_account(r) for r in self.database.execute(f"SELECT {_COLUMNS} FROM accounts ORDER BY name")]

    def disable(self, name: str) -> Account:
        with self.database.transaction():
            done = self.database.execute("UPDATE accounts SET disabled = 1, generation = generation + 1 "
                                         "WHERE name = ?", (name,)).rowcount
        if not done:
            raise AccountError(f"no account {name!r} (see `dojoguard console user list`)")
        return self.get(name)

    def set_password(self, name: str, password: str) -> Account:
        check_password(password, name)
        with self.database.transaction():
            done = self.database.execute(
                "UPDATE accounts SET hash = ?, failures = 0, locked_until = NULL, generation = generation + 1 "
                "WHERE name = ?", (HASHER.hash(password), name)).rowcount
        if not done:
            raise AccountError(f"no account {name!r} (see `dojoguard console user list`)")
        return self.get(name)

    def set_trust_scope(self, name: str, scope: str | None) -> Account:
        """Let the account read one school of the trust's central store, every school ("*"), or none (None).

        Its open logins end, so a narrowed scope takes effect at once.
        """
        if scope is not None and scope != TRUST_WIDE and not _SCHOOL.match(scope):
            raise AccountError(f"{scope!r} is not a school id: lower-case letters, digits and hyphens "
                               "(e.g. st-wilfrids)")
        with self.database.transaction():
            done = self.database.execute("UPDATE accounts SET trust_scope = ?, generation = generation + 1 "
                                         "WHERE name = ?", (scope, name)).rowcount
        if not done:
            raise AccountError(f"no account {name!r} (see `dojoguard console user list`)")
        return self.get(name)

    def end_logins(self, name: str) -> None:
        """End every open login of the account (its sessions carry the old generation)."""
        with self.database.transaction():
            self.database.execute("UPDATE accounts SET generation = generation + 1 WHERE name = ?", (name,))

    def unlock(self, name: str) -> Account:
        with self.database.transaction():
            done = self.database.execute("UPDATE accounts SET failures = 0, locked_until = NULL WHERE name = ?",
                                         (name,)).rowcount
        if not done:
            raise AccountError(f"no account {name!r} (see `dojoguard console user list`)")
        return self.get(name)

    def login(self, name: str, password: str, now: datetime, *, failures_allowed: int,
              lock_for: timedelta) -> Account:
        """The account, when the password is right and it is neither disabled nor locked; else ``LoginRefused``.

        The same message for a wrong name and a wrong password, and the same
        work (a hash check), so the form does not say which names exist.
        """
        refused = None
        with self.database.transaction():
            row = self.database.execute("SELECT hash, disabled, failures, locked_until FROM accounts WHERE name = ?",
                                        (name,)).fetchone()
            if row is None or len(password) > MAX_PASSWORD:
                _verify(_DUMMY, password[:MAX_PASSWORD])
                refused = LoginRefused("wrong name or password")
            else:
                refused = self._check(name, password, row, now, failures_allowed, lock_for)
        # Raised after the transaction: a failure's count must be committed, not rolled back with it.
        if refused is not None:
            raise refused
        return self.get(name)

    def _check(self, name: str, password: str, row, now: datetime, failures_allowed: int,
               lock_for: timedelta) -> LoginRefused | None:
        """Inside the login's transaction: count a failure, lock, or record the login; the refusal to raise."""
        stored, disabled, failures, locked_until = row
        locked = datetime.fromisoformat(locked_until) if locked_until else None
        if disabled:
            # The same answer as a wrong password, after the same work: a leaver's password is not confirmed.
            _verify(stored, password)
            return LoginRefused("wrong name or password")
        if locked is not None and now < locked:
            # Not even checked: a guess made while locked teaches nothing.
            return LoginRefused("this account is locked after too many wrong passwords", locked)
        if not _verify(stored, password):
            failures = failures + 1 if locked is None else 1  # a lock that ran out starts a new count
            until = now + lock_for if failures >= failures_allowed else None
            self.database.execute("UPDATE accounts SET failures = ?, locked_until = ? WHERE name = ?",
                                  (failures, until.isoformat() if until else None, name))
            if until is not None:
                return LoginRefused("this account is locked after too many wrong passwords", until, locked_now=True)
            return LoginRefused("wrong name or password")
        new_hash = HASHER.hash(password) if HASHER.check_needs_rehash(stored) else stored
        self.database.execute("UPDATE accounts SET failures = 0, locked_until = NULL, last_login = ?, hash = ? "
                              "WHERE name = ?", (now.isoformat(), new_hash, name))
        return None


def check_password(password: str, name: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must be at least {MIN_PASSWORD} characters (three random words are "
                           "easy to remember and hard to guess)")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must be at most {MAX_PASSWORD} characters")
    if name.casefold() in password.casefold():
        raise AccountError("the password must not contain the account name")


def _verify(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _account(row) -> Account:
    name, role, disabled, failures, locked_until, created_at, last_login, generation, trust_scope = row
    return Account(name, Role(role), bool(disabled), failures,
                   datetime.fromisoformat(locked_until) if locked_until else None,
                   datetime.fromisoformat(created_at), datetime.fromisoformat(last_login) if last_login else None,
                   generation, trust_scope)
