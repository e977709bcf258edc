"""The console's pages, one module each; ``register`` adds them to the application."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from dojoguard.console.pages import auth, consent, decisions, exemptions, held, health, overview, reports, trust
    from dojoguard.console.pages.format import install

    for module in (auth, overview, decisions, held, exemptions, consent, reports, health, trust):
        app.register_blueprint(module.blueprint)
    install(app)
