"""The mitmproxy options dojoguard starts with, and the ones it refuses."""

from __future__ import annotations

import re

import pytest
from mitmproxy import options

from dojoguard.proxy import master as proxy_master
from dojoguard.proxy.runner import RefusedToStart, check_options, mitmproxy_options


async def test_options_intercept_only_classdojo_and_never_stream_requests(settings, services):
    """allow_hosts is built from the catalogue, request bodies are never streamed, emudhra is off."""
    opts = mitmproxy_options(settings, services)
    assert opts["stream_large_bodies"] is None
    assert opts["emudhra"] is False and opts["emudhra_old"] is False
    assert any(re.search(p, "teach.classdojo.com:443") for p in opts["allow_hosts"])
    assert not any(re.search(p, "www.example.org:443") for p in opts["allow_hosts"])
    master = proxy_master.build(options.Options(), with_termlog=False)
    master.options.update(**opts)  # raises if dojoguard's master lacks any option it sets
    check_options(master.options)


@pytest.mark.parametrize("option", ["emudhra", "emudhra_old"])
async def test_emudhra_options_refuse_the_start(option):
    """The leaked-key eMudhra options stop the start."""
    master = proxy_master.build(options.Options(), with_termlog=False)
    master.options.update(**{option: True})
    with pytest.raises(RefusedToStart, match="emudhra"):
        check_options(master.options)


async def test_streamed_request_bodies_refuse_the_start():
    """stream_large_bodies would forward writes before they are judged: refused."""
    master = proxy_master.build(options.Options(), with_termlog=False)
    master.options.update(stream_large_bodies="1m")
    with pytest.raises(RefusedToStart, match="stream_large_bodies"):
        check_options(master.options)
