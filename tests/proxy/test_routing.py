"""The names a request carries, normalised and checked against each other (plain values, no proxy)."""

from __future__ import annotations

import pytest

from dojoguard.proxy import catalogue, routing
from dojoguard.proxy.routing import Names, route

BUILTIN = catalogue.load("builtin")


def role_of(host: str) -> str | None:
    return BUILTIN.role_of(host)


@pytest.mark.parametrize("spelling", ["teach.classdojo.com", "TEACH.ClassDojo.com", "teach.classdojo.com.",
                                      " teach.classdojo.com ", "teach.classdojo.com.."])
def test_spellings_of_one_name_normalise_to_it(spelling):
    """Case, the DNS root's trailing dot and spaces make no difference to which host it is."""
    assert routing.normalise(spelling) == "teach.classdojo.com"


def test_unicode_names_become_their_idna_a_labels():
    """A Unicode name is compared in the form DNS and TLS use (the A-label)."""
    assert routing.normalise("bücher.example") == "xn--bcher-kva.example"
    assert routing.normalise("[::FFFF:127.0.0.1]") == "127.0.0.1"


@pytest.mark.parametrize("host", ["classdojo.com", "ClassDojo.com.", "new-thing.classdojo.com",
                                  "teach.classdojo.com.", "TEACH.CLASSDOJO.COM"])
def test_the_apex_and_every_subdomain_are_classdojo(host):
    """The apex domain and any *.classdojo.com name, however spelled, are ClassDojo's."""
    assert role_of(host) is not None


@pytest.mark.parametrize("host", ["classdojo.com.evil.example", "notclassdojo.com", "classdojo.co", "127.0.0.1"])
def test_look_alike_names_are_not_classdojo(host):
    """Names that only contain or resemble ClassDojo's are not taken for it."""
    assert role_of(host) is None


def test_agreeing_names_route_to_classdojo():
    """Tunnel, TLS name and Host all ClassDojo's: judged as the Host, no problem."""
    found = route(Names("teach.classdojo.com", "teach.classdojo.com", ("teach.classdojo.com",)), role_of)
    assert found == routing.Route("teach.classdojo.com", "api", None)


@pytest.mark.parametrize("requested", [("www.example.org",), ("127.0.0.1",), ("localhost:443",), ("[::1]",)])
def test_a_host_that_disagrees_with_a_classdojo_tunnel_is_a_problem(requested):
    """A ClassDojo connection carrying another site's Host is refused, not judged as the other site."""
    found = route(Names("teach.classdojo.com", "teach.classdojo.com", requested), role_of)
    assert found.classdojo and found.problem and "goes to" in found.problem


def test_a_classdojo_host_on_another_tunnel_is_a_problem():
    """The reverse: a tunnel to another site whose request names ClassDojo is refused too."""
    found = route(Names("www.example.org", "www.example.org", ("teach.classdojo.com",)), role_of)
    assert found.classdojo and found.problem


def test_two_host_headers_are_a_problem_even_when_one_is_classdojo():
    """Duplicated Host headers that differ are refused (servers disagree on which one counts)."""
    found = route(Names("teach.classdojo.com", None, ("teach.classdojo.com", "www.example.org")), role_of)
    assert found.problem and "more than one host" in found.problem


def test_two_classdojo_names_share_a_connection():
    """Browsers reuse one HTTP/2 connection for hosts of one certificate: two ClassDojo names are allowed."""
    found = route(Names("teach.classdojo.com", "teach.classdojo.com", ("home.classdojo.com",)), role_of)
    assert found == routing.Route("home.classdojo.com", "api", None)


def test_a_transparent_connection_to_an_address_is_judged_by_its_names():
    """In transparent mode the connection is an IP address: the TLS name and Host decide, and must agree."""
    assert route(Names("203.0.113.7", "teach.classdojo.com", ("teach.classdojo.com",)), role_of).problem is None
    assert route(Names("203.0.113.7", "teach.classdojo.com", ("www.example.org",)), role_of).problem


def test_other_sites_are_not_classdojo_and_not_a_problem():
    """A request that names no ClassDojo host anywhere is none of the proxy's business."""
    found = route(Names("www.example.org", "www.example.org", ("www.example.org",)), role_of)
    assert not found.classdojo and found.problem is None


def test_a_problem_names_are_printable_and_short():
    """The names go into the audit record: control characters and long names are cut down."""
    found = route(Names("teach.classdojo.com", None, ("evil\x00" + "x" * 500 + ".example",)), role_of)
    assert found.problem and "\x00" not in found.problem and len(found.problem) < 250
