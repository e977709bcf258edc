"""Security properties of a real running proxy and of the files IT staff edit.

Covered elsewhere, and not repeated here:
- reports escape everything: tests/audit/test_report.py
  ``test_html_escapes_everything_from_teachers_and_rule_files`` and
  ``test_csv_has_every_record_and_neutralises_formulas``;
- no message text, names or image bytes in logs or audit records after a
  school day: tests/demo/test_demo.py ``test_no_message_text_is_logged_or_audited``,
  ``test_no_name_is_logged_or_audited``, ``test_no_image_bytes_are_logged_or_audited``;
- hostile rule files (alias bombs, deep nesting, tabs, duplicate keys,
  catastrophic regular expressions): tests/rules/invalid/ through
  tests/rules/test_files.py; a running proxy keeping its last good policy:
  tests/proxy/test_run.py ``test_broken_policy_edit_keeps_the_last_good_one_and_a_fix_is_reloaded``.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from dojoguard import config, yamlfile
from dojoguard.cli import cli
from dojoguard.proxy import catalogue
from dojoguard.rules.exemptions import load_exemptions
from dojoguard.rules.policy import load_policy
from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess
from tests.proxy.conftest import write_config

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"

# Tags PyYAML's unsafe loaders would turn into running code or arbitrary objects.
CODE_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.check_output [['touch', '{marker}']]",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:builtins.object {{}}",
    "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {marker}']",
    "!custom {{a: 1}}",
]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A real proxy serving only 127.0.0.1/32, in front of the stand-in, with every database opened."""
    folder = tmp_path_factory.mktemp("security")
    cfg = write_config(folder, client_networks=["127.0.0.1/32"])
    with StandIn(folder / "standin") as standin:
        proxy = ProxyProcess(cfg, folder, standin.port, standin.ca_cert).start()
        try:
            yield {"folder": folder, "proxy": proxy, "config": cfg, "standin": standin}
        finally:
            proxy.stop()


def _connect_from(source: str, proxy: ProxyProcess) -> bytes:
    """What the proxy answers a CONNECT from ``source`` (b"" when it closes the connection)."""
    with socket.socket() as raw:
        raw.bind((source, 0))
        raw.settimeout(10)
        raw.connect(("127.0.0.1", proxy.port))
        raw.sendall(b"CONNECT teach.classdojo.com:443 HTTP/1.1\r\nHost: teach.classdojo.com:443\r\n\r\n")
        try:
            return raw.recv(4096)
        except (ConnectionResetError, TimeoutError):
            return b""


@pytest.mark.slow
def test_a_client_outside_the_served_networks_is_refused(running):
    """With client_networks 127.0.0.1/32, a device at 127.0.0.2 gets no tunnel while 127.0.0.1 does (no open relay)."""
    proxy = running["proxy"]
    assert _connect_from("127.0.0.1", proxy).startswith(b"HTTP/1.1 200")
    assert not _connect_from("127.0.0.2", proxy).startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 10  # the proxy's output is read by another thread
    while "outside-client-networks" not in proxy.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "connection.refused" in proxy.log() and "outside-client-networks" in proxy.log()
    from dojoguard.audit.log import AuditLog

    # The record is committed by the audit writer after the log line is printed: wait for it too.
    refused = []
    while not refused and time.monotonic() < deadline + 10:
        log = AuditLog.open(running["folder"] / "data" / "audit.sqlite")
        try:
            refused = [r.fields for r in log.records(types=("connection.refused",))]
        finally:
            log.close()
        time.sleep(0 if refused else 0.1)
    assert refused, "no connection.refused record"
    assert {"device": "127.0.0.2", "reason": "outside-client-networks"}.items() <= refused[0].items()


@pytest.mark.slow
def test_a_refused_client_cannot_send_a_plain_http_request_either(running):
    """A device outside the served networks cannot use the proxy for plain HTTP to any site."""
    proxy = running["proxy"]
    with socket.socket() as raw:
        raw.bind(("127.0.0.2", 0))
        raw.settimeout(10)
        raw.connect(("127.0.0.1", proxy.port))
        raw.sendall(f"GET http://127.0.0.1:{running['standin'].port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        try:
            answer = raw.recv(4096)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 2")


@pytest.mark.slow
def test_the_served_client_still_gets_classdojo(running):
    """The device inside the served network is judged and forwarded as usual (the refusal is not a blanket one)."""
    context = ssl.create_default_context(cafile=str(running["proxy"].ca_cert))
    with httpx.Client(proxy=running["proxy"].url, verify=context, timeout=30) as client:
        response = client.get("https://teach.classdojo.com/api/session")
    assert response.status_code in (200, 401)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
def test_keys_and_databases_are_readable_by_the_service_alone(running):
    """After a real start (and a first checkpoint) the CA key, signing key, databases and data folder are owner-only."""
    result = CliRunner().invoke(cli, ["--config", str(running["config"]), "audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    data_dir = running["folder"] / "data"
    secret = [running["proxy"].confdir / "mitmproxy-ca.pem", data_dir / "keys" / "audit-signing.key"]
    databases = sorted(data_dir.glob("*.sqlite"))
    assert {p.name for p in databases} >= {"audit.sqlite", "proxy.sqlite", "registry.sqlite", "holds.sqlite"}
    for path in secret + databases + sorted(data_dir.glob("*.sqlite-*")):
        assert _mode(path) & 0o077 == 0, f"{path.name} is mode {oct(_mode(path))}"
    # (The CA's own folder is given with --confdir here; by default it is inside the data folder.)
    for folder in (data_dir, data_dir / "keys"):
        assert _mode(folder) & 0o077 == 0, f"{folder.name} is mode {oct(_mode(folder))}"
    assert os.stat(data_dir / "audit.sqlite").st_uid == os.getuid()


def _listening_inodes() -> dict[str, str]:
    """socket inode -> local address of every listening TCP socket on this machine."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                found[fields[9]] = fields[1]
    return found


@pytest.mark.slow
def test_the_proxy_listens_on_its_one_configured_port_only(running):
    """The running proxy has exactly one listening socket, the proxy port: no admin or web interface to reach."""
    pid = running["proxy"].process.pid
    listening = _listening_inodes()
    mine = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in listening:
            mine.append(listening[target[8:-1]])
    assert len(mine) == 1, mine
    assert int(mine[0].rsplit(":", 1)[1], 16) == running["proxy"].port


@pytest.mark.slow
def test_the_admin_commands_work_on_local_files_only(running):
    """Every admin command takes its data from the local settings file; none is reachable through the proxy port."""
    proxy = running["proxy"]
    context = ssl.create_default_context(cafile=str(proxy.ca_cert))
    with httpx.Client(proxy=proxy.url, verify=context, timeout=30) as client:
        # An "admin" request addressed to the proxy itself is just an unknown plain-HTTP request.
        answers = [client.get(f"http://127.0.0.1:{proxy.port}/{p}").status_code for p in ("held", "audit", "admin")]
    assert all(code >= 400 for code in answers), answers
    result = CliRunner().invoke(cli, ["--config", str(running["config"]), "held", "list"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("tag", CODE_TAGS)
def test_yaml_tags_cannot_run_code_in_any_file_it_edits(tmp_path, tag):
    """Python object tags (and any other tag) are refused with a problem by the reader of every IT-edited file."""
    marker = tmp_path / "ran"
    value = tag.format(marker=marker)
    texts = {
        "settings": f"data_dir: {value}\n",
        "policy": f"policy:\n  name: {value}\ndefault: {{verdict: allow}}\nrules: []\n",
        "exemptions": f"exemptions:\n  - {value}\n",
        "catalogue": f"hosts: {value}\n",
    }
    loaders = {"settings": config.load, "policy": load_policy, "exemptions": load_exemptions,
               "catalogue": catalogue.load}
    for what, text in texts.items():
        path = tmp_path / f"{what}.yaml"
        path.write_text(text, "utf-8")
        with pytest.raises(yamlfile.FileProblems) as caught:
            loaders[what](path)
        assert caught.value.problems, what
    assert not marker.exists()


# Hostile YAML, whatever file it is put in: (name, text, the code it must be refused with).
HOSTILE_YAML = [
    ("alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
     "DG-YAML-ALIAS"),
    ("deep nesting", "a: " + "[" * 5000 + "]" * 5000 + "\n", None),
    ("tabs", "proxy:\n\tlisten: 127.0.0.1:8080\n", None),
    ("duplicate key", "timezone: Europe/London\ntimezone: UTC\n", None),
    ("huge", "# padding\n" * 200_000, None),
    ("not utf-8", "name: caf\xe9\n", None),
]


@pytest.mark.parametrize("what", ["settings", "policy", "exemptions", "catalogue"])
@pytest.mark.parametrize("name", [h[0] for h in HOSTILE_YAML])
def test_hostile_yaml_is_refused_quickly_by_every_file_it_edits(tmp_path, what, name):
    """Alias bombs, deep nesting, tabs, duplicate keys, huge and non-UTF-8 files are refused within a second."""
    text, code = next((t, c) for n, t, c in HOSTILE_YAML if n == name)
    path = tmp_path / f"{what}.yaml"
    path.write_bytes(text.encode("latin-1"))
    loaders = {"settings": config.load, "policy": load_policy, "exemptions": load_exemptions,
               "catalogue": catalogue.load}
    started = time.monotonic()
    with pytest.raises(yamlfile.FileProblems) as caught:
        loaders[what](path)
    assert time.monotonic() - started < 1.0
    problems = caught.value.problems
    assert problems and all(p.code.startswith("DG-") and p.message for p in problems)
    if code:
        assert code in {p.code for p in problems}


@pytest.mark.slow
def test_a_policy_with_a_code_tag_is_rejected_while_the_proxy_keeps_running(tmp_path):
    """A running proxy given a rule file with a Python tag rejects it, records why, and keeps its last good policy."""
    folder = tmp_path
    policy = folder / "policy.yaml"
    policy.write_text((Path(__file__).parent / "proxy" / "policy" / "messages-and-points.yaml").read_text("utf-8"))
    cfg = write_config(folder)
    doc = json.loads(cfg.read_text())
    doc["rules"] = {"policy": str(policy), "reload": True}
    cfg.write_text(json.dumps(doc))
    marker = folder / "ran"
    with StandIn(folder / "standin") as standin:
        with ProxyProcess(cfg, folder, standin.port, standin.ca_cert) as proxy:
            policy.write_text(policy.read_text() + f"\n# edit\nextra: !!python/object/apply:os.system "
                                                   f"['touch {marker}']\n")
            deadline = time.monotonic() + 20
            while "reload.rejected" not in proxy.log() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "reload.rejected" in proxy.log()
            context = ssl.create_default_context(cafile=str(proxy.ca_cert))
            with httpx.Client(proxy=proxy.url, verify=context, timeout=30) as client:
                assert client.post(MESSAGE, json={"body": "still judged"}).status_code in (200, 403)
            assert proxy.process.poll() is None
    assert not marker.exists()
