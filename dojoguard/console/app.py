"""The console's Flask application: login, roles, CSRF, security headers, admin networks, audit of actions.

Every request is checked in this order: the connection's source address
against ``console.admin_networks`` (the socket's address: a header can be
forged, the connection cannot), then the login (a signed session cookie,
``__Host-`` prefixed, Secure, HttpOnly, SameSite=Strict, ending after
``console.idle_minutes`` idle and whenever the account is disabled or its
password changes), then the role the page needs. Every POST carries a CSRF
token (Flask-WTF). Every answer forbids framing, caching and scripts from
anywhere (the console uses no JavaScript at all).
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Flask, abort, g, render_template, request
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from dojoguard import secretkeys
from dojoguard.clock import Clock, SystemClock
from dojoguard.console.accounts import ROLE_TITLES, Account, Accounts, Role

# Which roles open which page. A leader sees less than the headteacher; the DPO
# sees consent; IT sees system health; nobody but the headteacher grants exemptions.
EVERYONE = frozenset(Role)
PAGES: dict[str, frozenset[Role]] = {
    "overview": EVERYONE,
    "decisions": EVERYONE,
    "held": frozenset({Role.HEADTEACHER, Role.LEADER}),
    "exemptions": frozenset({Role.HEADTEACHER}),
    "consent": frozenset({Role.HEADTEACHER, Role.DPO}),
    "reports": frozenset({Role.HEADTEACHER, Role.LEADER, Role.DPO}),
    "health": frozenset({Role.HEADTEACHER, Role.IT}),
    # And only for accounts given a school or the whole trust (`dojoguard console user scope`).
    "trust": frozenset({Role.HEADTEACHER, Role.LEADER, Role.DPO}),
}
NAV = (("overview", "Overview"), ("decisions", "Decisions"), ("held", "Held items"), ("exemptions", "Exemptions"),
       ("consent", "Consent"), ("reports", "Reports"), ("health", "System health"), ("trust", "Trust"))
CSP = ("default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
COOKIE = "__Host-dojoguard-console"


@dataclass
class Console:
    """What the pages share: settings, clock and the stores, opened once per process."""

    config: Any
    clock: Clock
    accounts: Accounts
    networks: tuple
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _opened: dict[str, Any] = field(default_factory=dict)

    def opened(self, name: str, opener):
        """A store opened on first use and kept (each is safe to share between threads)."""
        with self._lock:
            if name not in self._opened:
                self._opened[name] = opener()
            return self._opened[name]

    def close(self) -> None:
        for thing in list(self._opened.values()) + [self.accounts]:
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - closing must reach every store
                pass

    def allows(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address((address or "").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


class User:
    """The logged-in account, as Flask-Login wants it; its id carries the account's generation."""

    is_active = True
    is_authenticated = True
    is_anonymous = False

    def __init__(self, account: Account):
        self.account = account

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def role(self) -> Role:
        return self.account.role

    def get_id(self) -> str:
        return f"{self.account.generation}:{self.account.name}"

    def may(self, page: str) -> bool:
        if page == "trust" and self.account.trust_scope is None:
            return False
        return self.account.role in PAGES[page]


def create_app(config, *, clock: Clock | None = None) -> Flask:
    app = Flask(__name__, template_folder="templates", static_folder="static")
    accounts = Accounts(config.path("console", "database"))
    networks = tuple(ipaddress.ip_network(n, strict=False) for n in config["console"]["admin_networks"])
    console = Console(config, clock or SystemClock(), accounts, networks)
    app.extensions["dojoguard"] = console
    key, _ = secretkeys.load_or_create(config.data_dir / "console-tls" / "session.key", "the console's session key")
    app.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_NAME=COOKIE, SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=config["console"]["idle_minutes"]),
        SESSION_REFRESH_EACH_REQUEST=True,
        # The token lives as long as the login it belongs to.
        WTF_CSRF_TIME_LIMIT=None, WTF_CSRF_SSL_STRICT=True,
        # The largest upload is a consent CSV.
        MAX_CONTENT_LENGTH=8 * 1024 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.jinja_env.autoescape = True
    CSRFProtect(app)
    login = LoginManager(app)
    login.login_view = "auth.login_form"
    login.login_message = "Log in to see that page."
    login.session_protection = "strong"

    @login.user_loader
    def _load(user_id: str) -> User | None:
        generation, _, name = user_id.partition(":")
        account = accounts.get(name)
        if account is None or account.disabled or str(account.generation) != generation:
            return None  # disabled, or the password changed: every earlier login ends here
        return User(account)

    @app.before_request
    def _admin_networks():
        # The socket's peer address (cheroot and werkzeug set REMOTE_ADDR from it), never X-Forwarded-For.
        if not console.allows(request.environ.get("REMOTE_ADDR")):
            abort(403, description="This address may not use the console (setting console.admin_networks).")

    @app.after_request
    def _headers(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin: the CSRF check compares the Referer with this host (WTF_CSRF_SSL_STRICT); no other site sees it.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def _csrf(error):
        return render_template("error.html.j2", title="Refused", message=(
            "This form was refused because its security token was missing or out of date. Go back, reload "
            "the page and try again.")), 400

    for code, title in ((403, "Not allowed"), (404, "Not found"), (413, "Too large")):
        app.register_error_handler(code, _error(title, code))

    @app.context_processor
    def _common():
        user = current_user if current_user.is_authenticated else None
        nav = [(page, title) for page, title in NAV if user is not None and user.may(page)]
        return {"user": user, "nav": nav, "role_title": ROLE_TITLES.get(user.role) if user else None,
                "page": g.get("page")}

    from dojoguard.console.pages import register

    register(app)
    return app


def _error(title: str, code: int):
    def handler(error):
        return render_template("error.html.j2", title=title, message=getattr(error, "description", title)), code
    return handler


def console() -> Console:
    from flask import current_app

    return current_app.extensions["dojoguard"]


def needs(page: str):
    """Only for logged-in accounts whose role may open ``page``; others get 403 (or the login form)."""
    def wrap(view):
        @wraps(view)
        def checked(*args, **kwargs):
            if not current_user.is_authenticated:
                from flask import current_app

                return current_app.login_manager.unauthorized()
            if not current_user.may(page):
                abort(403, description=f"Your account ({ROLE_TITLES[current_user.role]}) cannot open this page.")
            g.page = page
            return view(*args, **kwargs)
        return checked
    return wrap
