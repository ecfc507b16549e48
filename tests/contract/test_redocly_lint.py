"""Redocly's lint (its ``recommended`` rules) finds no error in the document: a second validator
beside openapi-spec-validator (``tests/http/test_openapi_contract.py``), with rules of its own
(every operation declares its security, every component is used, ...)."""

from __future__ import annotations

import json
from pathlib import Path

from app.main import create_app
from settings import Environment, Settings
from tests.contract.test_python_client import run
from tests.contract.test_typescript_client import MODULES, PACKAGE

# /healthz, /readyz and /metrics take no input and need no credentials: nothing to refuse
NO_4XX = {"/healthz", "/readyz", "/metrics"}


def test_redocly_recommended_rules(tmp_path: Path) -> None:
    assert (MODULES / "@redocly" / "openapi-core").is_dir(), (
        "tests/contract/typescript has no node_modules: run `make node-packages`"
    )
    document = create_app(Settings(env=Environment.LOCAL)).openapi()
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    output = run("node", PACKAGE / "lint.mjs", tmp_path / "openapi.json", cwd=PACKAGE)
    problems = json.loads(output.splitlines()[-1])
    unexpected = [
        p
        for p in problems
        if not (
            p["rule"] == "operation-4xx-response"
            and p["at"].split("/")[2].replace("~1", "/") in NO_4XX
        )
    ]
    assert unexpected == []
    assert len(problems) == len(NO_4XX)
