"""docs/api.md is generated from include/zerohttp.h and must be fresh."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import HEADER, REPO


def test_api_reference_is_fresh_and_complete():
    r = subprocess.run([sys.executable, str(REPO / "docs" / "gen_api.py"), "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr + " (run: python3 docs/gen_api.py)"
    api = (REPO / "docs" / "api.md").read_text()
    header = HEADER.read_text()
    for name in set(re.findall(r"^[\w \*]*?\b(zh_\w+)\(", header, re.M)):
        assert f"\n### {name}\n" in api, name
    for name in re.findall(r"^#define (ZH_\w+) ", header, re.M):
        assert f"| `{name}` |" in api, name


def test_guides_link_and_exist():
    for page in ("serve-files.md", "embedding.md", "api.md", "README.md"):
        assert (REPO / "docs" / page).is_file(), page
    assert not (REPO / "docs" / "api-v0-draft.h").exists()
