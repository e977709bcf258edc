"""The trust tests use the session's PostgreSQL server (``postgres`` and ``central_dsn`` in tests/conftest.py)."""
