"""DS-04: no signing key, default secret or generated key file is tracked in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from authgate.config import KNOWN_WEAK_KEYS, Settings

ROOT = Path(__file__).resolve().parent.parent
# Where the weak defaults may be named: the list that refuses them, and the tests that prove it.
ALLOWED = {"src/authgate/config.py", "docs/security.md", "README.md"}


def tracked_files() -> list[str]:
    result = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_no_key_file_or_dotenv_is_tracked() -> None:
    names = tracked_files()
    assert not [n for n in names if n.endswith(("signing.key", ".env", ".pem"))]


def test_well_known_secrets_appear_only_where_they_are_refused() -> None:
    pattern = re.compile("|".join(re.escape(k) for k in KNOWN_WEAK_KEYS if len(k) > 8))
    offenders = [
        name
        for name in tracked_files()
        if not name.startswith("tests/")
        and name not in ALLOWED
        and (ROOT / name).is_file()
        and pattern.search((ROOT / name).read_text(errors="ignore"))
    ]
    assert offenders == []


def test_there_is_no_default_signing_key() -> None:
    assert Settings().signing_key is None
