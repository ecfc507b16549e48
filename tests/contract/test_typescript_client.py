"""A TypeScript client: openapi-typescript types the live ``/openapi.json``, a small module
doing the whole flow with openapi-fetch (``typescript/flow.ts``) type-checks with them under
``tsc --strict``, and node runs it against the live gateway.

The npm packages (TypeScript 5, openapi-typescript, openapi-fetch) are pinned by
``typescript/package-lock.json`` and installed by ``make test`` (``make node-packages``).
Nothing generated is committed: the types are generated into a temporary directory each run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from tests.contract.test_python_client import run
from tests.e2e.conftest import ADMIN, VIEWER

PACKAGE = Path(__file__).parent / "typescript"
MODULES = PACKAGE / "node_modules"


def test_typed_openapi_fetch_type_checks_and_runs_the_whole_flow(
    live_gateway: str, tmp_path: Path
) -> None:
    assert (MODULES / ".bin" / "tsc").exists(), (
        "tests/contract/typescript has no node_modules: run `make node-packages`"
    )
    document = httpx.get(f"{live_gateway}/openapi.json", timeout=10)
    assert document.status_code == 200
    (tmp_path / "openapi.json").write_bytes(document.content)
    for name in ("flow.ts", "tsconfig.json", "package.json"):
        shutil.copy(PACKAGE / name, tmp_path / name)
    (tmp_path / "node_modules").symlink_to(MODULES, target_is_directory=True)

    # schema.ts, not .d.ts: tsc checks it even though it skips the libraries' declarations
    run(MODULES / ".bin" / "openapi-typescript", "openapi.json", "-o", "schema.ts", cwd=tmp_path)
    run(MODULES / ".bin" / "tsc", "-p", ".", cwd=tmp_path)

    output = run("node", "out/flow.js", live_gateway, *ADMIN, *VIEWER, cwd=tmp_path)
    assert "checks passed" in output, output
