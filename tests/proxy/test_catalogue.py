"""The endpoint catalogue loads, matches, and reports bad edits with file, line and a hint."""

from __future__ import annotations

import re

import pytest

from dojoguard.proxy import catalogue
from dojoguard.yamlfile import FileProblems


@pytest.fixture(scope="module")
def builtin():
    return catalogue.load("builtin")


def test_builtin_catalogue_matches_the_known_writes(builtin):
    """The shipped catalogue recognises messages, awards and class story posts with their ids."""
    entry, params = builtin.endpoint("POST", "api", "/api/dojoClass/5f0000000000000000000c01/awardBatch")
    assert entry.kind == "points.award" and params == {"classId": "5f0000000000000000000c01"}
    assert builtin.endpoint("POST", "api", "/api/message-thread/abc/message")[0].channel == "message"
    assert builtin.endpoint("GET", "api", "/api/message-thread/abc/message") is None


def test_every_entry_records_its_confidence(builtin):
    """Each host, endpoint and learn entry says how sure the catalogue is of it."""
    for item in builtin.hosts + builtin.endpoints + builtin.learning:
        assert item.confidence in ("confirmed", "old", "inferred", "unknown")


def test_intercept_patterns_are_anchored(builtin):
    """allow_hosts patterns match ClassDojo hosts only, not look-alikes."""
    patterns = [re.compile(p) for p in builtin.intercept_patterns()]

    def hit(s):
        return any(p.search(s) for p in patterns)

    assert hit("teach.classdojo.com:443") and hit("new.classdojo.com:443")
    assert not hit("classdojo.com.evil.example:443") and not hit("notclassdojo.com:443")
    assert not hit("www.example.org:443")


def test_roles_of_hosts(builtin):
    """Exact host entries win over the wildcard; unknown hosts have no role."""
    assert builtin.role_of("sphotos.classdojo.com") == "media"
    assert builtin.role_of("brand-new.classdojo.com") == "api"
    assert builtin.role_of("example.org") is None


def test_extra_hosts_are_upload_hosts():
    """Hosts from proxy.extra_hosts are intercepted and recognised as upload hosts."""
    cat = catalogue.load("builtin", extra_hosts=(r"^dojo-uploads\.s3\.amazonaws\.com:\d+$",))
    assert cat.role_of("dojo-uploads.s3.amazonaws.com") == "upload"
    assert cat.endpoint("PUT", "upload", "/uploads/k1")[0].kind == "attachment.upload"


def test_bad_catalogue_names_file_line_and_hint(tmp_path):
    """Schema errors, broken placeholders and duplicate ids are all reported with positions."""
    path = tmp_path / "catalogue.yaml"
    path.write_text("""version: 1
hosts:
  - {host: teach.classdojo.com, role: api, confidence: sure}
endpoints:
  - id: a
    method: POST
    path: /api/{broken
    kind: message.send
    channel: message
    confidence: inferred
    fields: {class: [path:nothere]}
  - id: a
    method: POST
    path: /api/x
    kind: message.send
    channel: message
    confidence: inferred
""")
    with pytest.raises(FileProblems) as info:
        catalogue.load(path)
    problems = info.value.problems
    assert [p.code for p in problems] == ["DG-CATALOGUE-INVALID"]
    assert problems[0].line == 3 and "Allowed: " in problems[0].hint
    path.write_text(path.read_text().replace("confidence: sure", "confidence: confirmed"))
    with pytest.raises(FileProblems) as info:
        catalogue.load(path)
    codes = sorted(p.code for p in info.value.problems)
    assert codes == ["DG-CATALOGUE-DUPLICATE", "DG-CATALOGUE-LOCATION", "DG-CATALOGUE-PATH"]
    assert all(p.line > 0 and p.hint for p in info.value.problems)


def test_signing_in_passes_unjudged(builtin):
    """Login and one-time-code writes carry no teacher content and pass through unjudged."""
    assert builtin.passes("POST", "api", "/api/session")
    assert not builtin.passes("POST", "api", "/api/message-thread/x/message")
    assert not builtin.passes("POST", "media", "/api/session")
