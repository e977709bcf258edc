"""README's Layout rules: only ``dojoguard/proxy/`` imports mitmproxy, and the arrows run one way."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dojoguard"
PROXY = PACKAGE / "proxy"


def imported(source: str, package: str) -> set[str]:
    """Every module name ``source`` (a module of ``package``) imports, anywhere in it, also inside functions."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[:len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def mitmproxy_imports(source: str, package: str) -> list[str]:
    return sorted(n for n in imported(source, package) if n == "mitmproxy" or n.startswith("mitmproxy."))


def test_only_the_proxy_package_imports_mitmproxy():
    """No module outside dojoguard/proxy/ imports mitmproxy, not even inside a function."""
    modules = sorted(p for p in PACKAGE.rglob("*.py") if PROXY not in p.parents)
    assert len(modules) > 50  # the scan sees the whole package
    found = {}
    for path in modules:
        package = ".".join(path.parent.relative_to(PACKAGE.parent).parts)
        found[str(path.relative_to(PACKAGE.parent))] = mitmproxy_imports(path.read_text("utf-8"), package)
    assert {path: names for path, names in found.items() if names} == {}, "only dojoguard/proxy/ may import mitmproxy"


def test_the_scan_finds_imports_in_functions_and_from_imports():
    """An import hidden in a function and a from-import are found; a relative import resolves in its package."""
    source = "def f():\n    import mitmproxy.http\n\nfrom mitmproxy import ctx\nfrom ..proxy import flows\n"
    assert mitmproxy_imports(source, "dojoguard.holds") == ["mitmproxy", "mitmproxy.ctx", "mitmproxy.http"]
    assert "dojoguard.proxy.flows" in imported(source, "dojoguard.holds")


def test_the_packages_the_proxy_uses_never_import_it():
    """README's arrows run one way: rules, consent_registry, audit, holds, storage, the console, the alerts, trust, the
    names and the state file never import dojoguard.proxy."""
    found = {}
    for name in ("rules", "consent_registry", "audit", "holds", "storage", "console", "alerts", "trust", "names.py",
                 "names_cli.py", "state.py"):
        for path in sorted((PACKAGE / name).rglob("*.py")) if (PACKAGE / name).is_dir() else [PACKAGE / name]:
            package = ".".join(path.parent.relative_to(PACKAGE.parent).parts)
            names = sorted(n for n in imported(path.read_text("utf-8"), package)
                           if n == "dojoguard.proxy" or n.startswith("dojoguard.proxy."))
            if names:
                found[str(path.relative_to(PACKAGE.parent))] = names
    assert found == {}, "the arrows run one way: proxy uses these packages, never the other way round"
