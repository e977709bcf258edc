"""Logging in and out."""

from __future__ import annotations

import threading
from datetime import timedelta

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from dojoguard.console import stores
from dojoguard.console.accounts import LoginRefused
from dojoguard.console.app import User, console

blueprint = Blueprint("auth", __name__)
# At most two password checks at once: each takes 64 MiB and a tenth of a second of a core, and the console
# shares two cores with the proxy. Further logins wait their turn rather than exhaust the server's memory.
_CHECKING = threading.BoundedSemaphore(2)


def _safe_next(target: str | None) -> str | None:
    """Only a path on this console: never another site (an open redirect after login)."""
    # Browsers drop tabs and newlines from a URL and read a backslash as a slash, so "/\t/evil.example" is
    # "//evil.example": any of them, or any other control character, and the target is not followed.
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 0x21 or ord(ch) == 0x7f for ch in target):
        return None
    return target


@blueprint.get("/login")
def login_form():
    if current_user.is_authenticated:
        return redirect(url_for("overview.index"))
    return render_template("login.html.j2", title="Log in", next_page=_safe_next(request.args.get("next")))


@blueprint.post("/login")
def login():
    c = console()
    name = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    settings = c.config["console"]
    now = c.clock.now()
    try:
        with _CHECKING:
            account = c.accounts.login(name, password, now, failures_allowed=settings["lockout_failures"],
                                       lock_for=timedelta(minutes=settings["lockout_minutes"]))
    except LoginRefused as refused:
        known = c.accounts.get(name)
        if known is not None:
            # Names that exist only: a password typed into the name field is never recorded.
            event = "console.locked" if refused.locked_now else "console.login_refused"
            fields = {"account": known.name, "reason": str(refused), "address": request.remote_addr}
            if refused.locked_until is not None:
                fields["until"] = refused.locked_until.isoformat()
            stores.audit().append_event(event, fields)
        message = str(refused).capitalize() + "."
        if refused.locked_until is not None:
            from dojoguard.console.pages.format import local

            message += f" Try again after {local(refused.locked_until, '%H:%M')}, or ask IT to unlock it."
        return render_template("login.html.j2", title="Log in", refused=message, username=name,
                               next_page=_safe_next(request.form.get("next"))), 401
    session.clear()  # a fresh session for the new login
    session.permanent = True
    login_user(User(account))
    stores.audit().append_event("console.login", {"account": account.name, "role": account.role.value,
                                                  "address": request.remote_addr})
    return redirect(_safe_next(request.form.get("next")) or url_for("overview.index"))


@blueprint.post("/logout")
def logout():
    if current_user.is_authenticated:
        name = current_user.name
        stores.audit().append_event("console.logout", {"account": name})
        # The session is a signed cookie: a copy taken before "Log out" would still be valid. A new
        # generation ends every login of the account, this one and any copy (and other devices' too).
        console().accounts.end_logins(name)
        logout_user()
    session.clear()
    return redirect(url_for("auth.login_form"))
