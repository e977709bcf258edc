"""The start against other mitmproxy option sets: the newest release's, main branch's (no emudhra), and ones lacking
an option dojoguard needs."""

from __future__ import annotations

import os

import pytest
import structlog
from mitmproxy import optmanager

from dojoguard.proxy import master as proxy_master
from dojoguard.proxy import mitmoptions
from dojoguard.proxy.runner import RefusedToStart, check_options, mitmproxy_options, set_options
from tests.support import newest_mitmproxy


async def pinned_definitions() -> dict:
    """The definitions of every option of dojoguard's master, as the pinned mitmproxy declares them."""
    return dict(proxy_master.build(with_termlog=True).options.items())


def options_named(definitions: dict, names) -> optmanager.OptManager:
    """A real mitmproxy options object with exactly the ``names`` (of ``definitions``) and no others."""
    opts = optmanager.OptManager()
    for name in sorted(set(names) & set(definitions)):
        o = definitions[name]
        opts.add_option(name, o.typespec, o.default, o.help, o.choices)
    return opts


def wanted(settings, services) -> set[str]:
    return {"termlog_verbosity", *mitmproxy_options(settings, services)}


@pytest.fixture(scope="module")
def newest() -> newest_mitmproxy.Release:
    """The newest mitmproxy release on the registry and its option names; only offline is this skipped."""
    try:
        return newest_mitmproxy.newest()
    except newest_mitmproxy.RegistryUnreachable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the package registry must be reachable in CI to test the newest mitmproxy: {exc}")
        pytest.skip(f"offline: cannot ask the package registry for the newest mitmproxy ({exc})")


async def test_the_start_takes_the_newest_mitmproxy_release_options(newest, settings, services):
    """Against exactly the newest release's option names: the start sets all it has, logs what it skipped, and
    still refuses the emudhra options if that release has them and they are on."""
    definitions = await pinned_definitions()
    opts = options_named(definitions, newest.options)
    lacking = sorted(wanted(settings, services) - newest.options)
    assert set(lacking) <= set(mitmoptions.HARMLESS_IF_ABSENT), (
        f"mitmproxy {newest.version} has no {lacking}: dojoguard cannot start on it; see proxy/mitmoptions.py")
    with structlog.testing.capture_logs() as logs:
        skipped = set_options(opts, settings, services)
    assert skipped == lacking
    assert [e["options"] for e in logs if e["event"] == "proxy.options_skipped"] == ([lacking] if lacking else [])
    expected = mitmproxy_options(settings, services)
    assert {name: getattr(opts, name) for name in expected if name in opts} == \
           {name: value for name, value in expected.items() if name in opts}
    for option in set(mitmoptions.LEAKED_CA) & newest.options:
        opts.update(**{option: True})
        with pytest.raises(RefusedToStart, match="emudhra"):
            check_options(opts)
        opts.update(**{option: False})


async def test_a_mitmproxy_without_the_emudhra_options_starts_and_says_so(settings, services):
    """As mitmproxy's main branch: no emudhra options, so the start leaves them out, logs it, and starts."""
    definitions = await pinned_definitions()
    opts = options_named(definitions, set(definitions) - set(mitmoptions.LEAKED_CA))
    with structlog.testing.capture_logs() as logs:
        skipped = set_options(opts, settings, services)
    assert skipped == ["emudhra", "emudhra_old"]
    [line] = [e for e in logs if e["event"] == "proxy.options_skipped"]
    assert line["options"] == ["emudhra", "emudhra_old"] and line["log_level"] == "info"
    assert opts.stream_large_bodies is None
    assert opts.allow_hosts == mitmproxy_options(settings, services)["allow_hosts"]
    mitmoptions.refuse_leaked_ca(opts)  # absent is off


@pytest.mark.parametrize("needed", ["stream_large_bodies", "body_size_limit", "allow_hosts", "mode", "http3",
                                    "ssl_verify_upstream_trusted_ca"])
async def test_a_mitmproxy_without_an_option_dojoguard_needs_refuses_to_start(needed, settings, services):
    """A needed option is never skipped: the start is refused, naming it, before any option is set."""
    definitions = await pinned_definitions()
    opts = options_named(definitions, set(definitions) - {needed})
    with pytest.raises(RefusedToStart, match=f"no option {needed},"):
        set_options(opts, settings, services)
    assert opts.listen_port == definitions["listen_port"].default


def test_every_option_dojoguard_sets_is_needed_or_harmless_to_leave_out(settings, services):
    """The harmless list names only options dojoguard sets: a stale entry would hide nothing, but mislead."""
    assert set(mitmoptions.HARMLESS_IF_ABSENT) <= wanted(settings, services)


def test_mitmdump_option_listings_are_read_by_name():
    """The option names of ``mitmdump --options`` are its top-level YAML keys, not its comments or values."""
    listing = "# Opposite of --ignore-hosts. Type sequence of str.\nallow_hosts: []\n\n" \
              "# Add all certificates. Type bool.\nanticache: false\nmode:\n- regular\n"
    assert newest_mitmproxy.option_names(listing) == {"allow_hosts", "anticache", "mode"}
