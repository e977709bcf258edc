"""The leaders' console: senior leaders, the headteacher, the DPO and IT do their part in a browser.

Its own process (``dojoguard console``), never on the proxy's event loop,
reading the same data folder: the audit log, the hold store, the exemptions
file, the consent registry and the proxy's names. ``accounts`` keeps who may
log in; ``app`` builds the Flask application (login, CSRF, roles, headers);
``pages`` holds the views, one module per page; ``figures`` answers the
overview and searches straight from the audit log's index; ``server`` serves
it over HTTPS with cheroot; ``cli`` is ``dojoguard console``.
"""
