"""Cold start: importing the app (function_app, every blueprint in functions/, and the logging set-up
it runs) must not import the heavy SDKs; they load inside the factories that need them.

Only what we control is asserted: anything `import azure.functions` pulls in by itself is allowed (the worker
imports it anyway). On failure the message shows the import chain that pulled each SDK in.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from localdev.importtime import chain, run

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "msal",
    "azure.identity",
    "azure.keyvault",
    "azure.storage",
    "azure.data.tables",
    "azure.core",
    "azure.monitor",
    "opentelemetry",
    "requests",
    "urllib3",
    "cryptography",
    "jwt",
)
APP_START = [
    "function_app",
    *sorted(f"functions.{p.stem}" for p in (ROOT / "functions").glob("*.py") if p.stem != "__init__"),
    "shared.logging_setup",
    "shared.log_context",
    "shared.telemetry",
]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _is_heavy(module: str) -> str | None:
    return next((root for root in HEAVY if module == root or module.startswith(f"{root}.")), None)


def test_importing_the_app_does_not_import_heavy_sdks():
    statement = (
        "import "
        + ", ".join(APP_START)
        + "; from shared.logging_setup import configure_logging; configure_logging()"
    )
    baseline, _ = run("import azure.functions", cwd=ROOT, env=_env())
    app, _ = run(statement, cwd=ROOT, env=_env())
    allowed = {line.module for line in baseline}

    first_by_root: dict[str, str] = {}
    for line in reversed(app):  # post-order reversed: outermost import of each SDK first
        root = _is_heavy(line.module)
        if root and line.module not in allowed and root not in first_by_root:
            first_by_root[root] = line.module
    report = "\n".join(
        f"  {root}: {' <- '.join(chain(app, module))}" for root, module in first_by_root.items()
    )
    assert not first_by_root, f"importing the app pulls in heavy SDKs eagerly:\n{report}"


def test_the_baseline_itself_imports_none_of_them():
    """If azure.functions ever starts importing one of these, the test above silently allows it: say so."""
    baseline, _ = run("import azure.functions", cwd=ROOT, env=_env())
    assert sorted({root for line in baseline if (root := _is_heavy(line.module))}) == [], sys.version
