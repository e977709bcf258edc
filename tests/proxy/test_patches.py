"""The mitmproxy (and wsproto) code dojoguard replaces in place, and what that code relies on, is the pinned one."""

from __future__ import annotations

import pytest
from mitmproxy.proxy.layers import tls, websocket
from mitmproxy.proxy.layers.http import HttpStream
from mitmproxy.proxy.layers.http._http1 import Http1Server

from dojoguard.proxy import master, patches


@pytest.mark.parametrize("module", [m for m, _, _ in master.PATCHES], ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_the_code_each_replacement_was_written_against_is_unchanged(module):
    """A changed digest means an upgrade changed code a replacement copies or relies on: the start would leave
    that protection off. Review the module against the new code, then record its new digest."""
    path = module.__name__.replace(".", "/") + ".py"
    assert module.source_digest() == module._EXPECTED, (
        f"The installed mitmproxy/wsproto changed code that {path} replaces or relies on (its source_digest() "
        f"lists which). Review {path} against the new code, then set its _EXPECTED to {module.source_digest()}.")


def _methods():
    return (tls.TLSLayer.send_data, HttpStream.check_body_size, Http1Server._handle_event,
            websocket.WebsocketLayer.start, websocket.WebsocketLayer.relay_messages,
            websocket.WebsocketLayer._handle_event)


async def test_uninstalling_puts_mitmproxy_own_methods_back():
    """After a master is built and its replacements uninstalled, every class has exactly its own methods again."""
    shipped = _methods()
    inherited = "_handle_event" in Http1Server.__dict__
    master.build(with_termlog=False)
    assert all(a is not b for a, b in zip(_methods(), shipped, strict=True))
    master.uninstall_patches()
    assert all(a is b for a, b in zip(_methods(), shipped, strict=True))
    assert ("_handle_event" in Http1Server.__dict__) == inherited  # inherited again, not copied onto the class


def test_restore_puts_back_an_inherited_attribute_as_inherited():
    """``restore`` removes what was added over an inherited attribute, and puts back what the class defined."""

    class Base:
        def f(self):
            return "base"

    class Child(Base):
        def g(self):
            return "child"

    inherited, defined = patches.own(Child, "f"), patches.own(Child, "g")
    Child.f = Child.g = lambda self: "patched"
    patches.restore(Child, "f", inherited)
    patches.restore(Child, "g", defined)
    assert "f" not in Child.__dict__ and Child().f() == "base" and Child().g() == "child"
