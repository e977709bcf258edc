"""dojoguard's mitmproxy master: the proxy core, and none of the workbench."""

from __future__ import annotations

import pytest
from mitmproxy import options

from dojoguard.proxy import master as proxy_master


def _names(master) -> set[str]:
    return {type(addon).__name__ for addon in master.addons.chain}


async def test_the_master_has_the_proxy_core():
    names = _names(proxy_master.build(options.Options(), with_termlog=False))
    assert {"Core", "Proxyserver", "NextLayer", "TlsConfig", "DnsResolver", "StripDnsHttpsRecords",
            "DisableH2C", "ErrorCheck"} <= names


async def test_the_master_leaves_out_flow_savers_scripts_and_rewriters():
    """Nothing that writes flows to disk, runs Python files or rewrites traffic is loaded."""
    master = proxy_master.build(options.Options(), with_termlog=False)
    assert not _names(master) & {"Save", "SaveHar", "ScriptLoader", "CommandHistory", "Onboarding", "MapLocal",
                                 "MapRemote", "ModifyBody", "ModifyHeaders", "ClientPlayback", "ServerPlayback",
                                 "ReadFileStdin", "Dumper"}
    for option in ("save_stream_file", "hardump", "scripts", "map_local", "modify_body", "server_replay"):
        assert option not in master.options
        with pytest.raises(KeyError):
            master.options.update(**{option: None})


async def test_the_master_with_termlog_shows_mitmproxys_own_warnings():
    assert "TermLog" in _names(proxy_master.build(options.Options(), with_termlog=True))
    assert "TermLog" not in _names(proxy_master.build(options.Options(), with_termlog=False))
