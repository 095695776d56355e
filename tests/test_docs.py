"""The docs hold: their Python snippets run as printed, and they point at nothing outside the
repository."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import get_type_hints
from urllib.parse import urlsplit

import httpx
import pytest

from authgate.verify import Verifier

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_PYTHON = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_URL = re.compile(r"https?://[^\s)`\"'<>;]+")
#: Hosts that name no real place: loopback, reserved example names, the upstream in nginx.
_PLACEHOLDER_HOSTS = re.compile(
    r"^(127\.0\.0\.1|localhost|authgate|example\.(com|org)|.*\.example(\.com)?|.*\.(test|invalid))$"
)
#: A path on the machine the docs were written on, e.g. a note in someone's home or /work.
_FOREIGN_PATH = re.compile(r"(?<![\w.~-])/(work|home|Users|root|mnt|srv|opt|tmp)/")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _snippets() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in _PYTHON.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            found.append((f"{doc.relative_to(ROOT)}:{line}", match.group(1)))
    return found


def test_the_docs_have_python_snippets() -> None:
    assert any(where.startswith("docs/tokens.md") for where, _ in _snippets())


@pytest.mark.anyio
@pytest.mark.parametrize(("where", "code"), _snippets(), ids=[w for w, _ in _snippets()])
async def test_every_python_snippet_in_the_docs_runs(where: str, code: str) -> None:
    namespace: dict[str, object] = {"__name__": "snippet"}
    exec(compile(code, where, "exec"), namespace)  # noqa: S102 - our own docs, as printed
    app = namespace.get("app")
    if app is not None:  # a web app: it answers, and refuses a request without a token
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://snippet.test") as c:
            assert (await c.get("/admin")).status_code == 401
    for value in namespace.values():
        if isinstance(value, Verifier):
            await value.aclose()


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_the_docs_point_nowhere_outside_the_repository(doc: Path) -> None:
    text = doc.read_text()
    for url in _URL.findall(text):
        host = urlsplit(url).hostname or ""
        assert _PLACEHOLDER_HOSTS.match(host), f"{doc.name}: {url}"
    assert not _FOREIGN_PATH.search(text), _FOREIGN_PATH.search(text)
    for target in _LINK.findall(text):
        assert "://" not in target, f"{doc.name}: {target}"
        assert (doc.parent / target.split("#")[0]).resolve().is_relative_to(ROOT), target
        assert (doc.parent / target.split("#")[0]).exists(), f"{doc.name}: {target}"


ARCHITECTURE = ROOT / "docs" / "architecture.md"
SOURCE = ROOT / "src" / "authgate"
_FILE = re.compile(r"(?<![\w/.-])([\w/]+\.py)\b")
#: `module.name`, `http/app.name`, `Class.member`: dotted names in backticks.
_DOTTED = re.compile(r"`(?:[\w./ ]*[ (])?([\w/]+(?:\.\w+)+)(?:\([^`]*\))?`")


def _modules() -> dict[str, list[ModuleType]]:
    """authgate's modules, by their short names: `tokens`, `http/app`, `app`..."""
    found: dict[str, list[ModuleType]] = {}
    for path in SOURCE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        relative = path.relative_to(SOURCE).with_suffix("")
        module = importlib.import_module(".".join(("authgate", *relative.parts)))
        for name in {relative.as_posix(), relative.name}:
            found.setdefault(name, []).append(module)
    return found


def _has(owner: object, names: list[str]) -> bool:
    for name in names:
        if name in getattr(owner, "__dataclass_fields__", {}) and not hasattr(owner, name):
            owner = get_type_hints(owner)[name]  # a field without a default: its type
            continue
        if not hasattr(owner, name):
            # An attribute set in __init__ (``self.issue = ...``) is the last name checked.
            last = name == names[-1]
            return last and isinstance(owner, type) and f"self.{name} =" in inspect.getsource(owner)
        owner = getattr(owner, name)
    return True


def test_every_file_and_name_the_architecture_page_gives_exists() -> None:
    """docs/architecture.md names modules (`storage/fast_refresh.py`), functions
    (`runtime.build_services`) and members (`Database.fetch_on_driver`): each must exist.
    A dotted name whose first part is neither a module nor a class of authgate's is not
    checked (`secrets.token_hex`)."""
    text = ARCHITECTURE.read_text()
    files = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py") if ".venv" not in p.parts]
    for name in _FILE.findall(text):
        assert any(f == name or f.endswith("/" + name) for f in files), f"no file {name}"
    modules = _modules()
    classes = {
        name: [value]
        for found in modules.values()
        for module in found
        for name, value in vars(module).items()
        if isinstance(value, type) and value.__module__.startswith("authgate")
    }
    checked = 0
    for dotted in _DOTTED.findall(text):
        if dotted.endswith(".py") or dotted.startswith("src/"):
            continue
        first, *rest = dotted.split(".")
        owners = modules.get(first) or classes.get(first)
        if owners is None:
            continue
        assert any(_has(owner, rest) for owner in owners), f"no {dotted}"
        checked += 1
    assert checked > 20  # the pattern still finds the names
