"""The option names of the newest mitmproxy release the package registry serves.

The pinned mitmproxy is what dojoguard ships with; the newest release is what
an upgrade would bring. ``newest()`` asks the registry for the newest version,
installs it (wheels only) into a throwaway environment of its own under
``test-output/newest-mitmproxy/`` (ignored by git), asks its ``mitmdump
--options`` for every option name, and keeps the names beside it, so later
runs only ask the registry which version is newest.

``scripts/setup --test`` runs this once, so the tests find it ready:

    .venv/bin/python -m tests.support.newest_mitmproxy
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(__file__).resolve().parents[2] / "test-output" / "newest-mitmproxy"
TIMEOUT_S = 300


class RegistryUnreachable(Exception):
    """The package registry could not be asked which mitmproxy is newest."""


@dataclass(frozen=True)
class Release:
    version: str
    options: frozenset[str]


def _pip(*args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


def newest_version() -> str:
    """The newest mitmproxy version the registry serves; ``RegistryUnreachable`` if it cannot be asked."""
    try:
        done = _pip("index", "versions", "mitmproxy", "--timeout", "20", "--retries", "1", timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise RegistryUnreachable("pip index versions mitmproxy timed out") from exc
    found = re.search(r"^mitmproxy \(([^)]+)\)", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not found:
        raise RegistryUnreachable(f"pip index versions mitmproxy failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return found.group(1)


def option_names(mitmdump_options: str) -> frozenset[str]:
    """The option names in ``mitmdump --options`` output (YAML: one top-level key per option)."""
    names = frozenset(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*):", mitmdump_options, re.MULTILINE))
    if not names:
        raise ValueError("mitmdump --options printed no option")
    return names


def _install(version: str, folder: Path) -> frozenset[str]:
    env = folder / "venv"
    shutil.rmtree(env, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=TIMEOUT_S)
    done = _pip("--python", str(env / "bin" / "python"), "install", "--quiet", "--only-binary=:all:",
                "--timeout", "30", f"mitmproxy=={version}")
    if done.returncode != 0:
        raise RuntimeError(f"installing mitmproxy {version} failed: {done.stderr.strip()[-1000:]}")
    shown = subprocess.run([str(env / "bin" / "mitmdump"), "--options"], capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    if shown.returncode != 0:
        raise RuntimeError(f"mitmdump {version} --options failed: {shown.stderr.strip()[-1000:]}")
    names = option_names(shown.stdout)
    shutil.rmtree(env, ignore_errors=True)  # only the names are kept
    return names


def newest() -> Release:
    """The newest release and its option names (installed and asked once per version, then read back)."""
    version = newest_version()
    folder = CACHE / version
    kept = folder / "options.json"
    if kept.exists():
        return Release(version, frozenset(json.loads(kept.read_text("utf-8"))))
    folder.mkdir(parents=True, exist_ok=True)
    names = _install(version, folder)
    kept.write_text(json.dumps(sorted(names)), "utf-8")
    return Release(version, names)


if __name__ == "__main__":
    release = newest()
    print(f"mitmproxy {release.version}: {len(release.options)} options, kept in {CACHE / release.version}")
