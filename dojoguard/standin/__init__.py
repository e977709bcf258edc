"""A local HTTPS stand-in for ClassDojo, for tests, demonstrations and benchmarks.

It answers the ClassDojo API shapes described in the project's traffic notes
on teach.classdojo.com, api.classdojo.com and the media and realtime hosts,
with its own certificate authority, and records every request it receives so
a test can assert that nothing reached ClassDojo. Never use it as a real service.
"""

from dojoguard.standin.server import Received, StandIn

__all__ = ["Received", "StandIn"]
