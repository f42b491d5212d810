"""What the Bicep under infra/ declares, read with pycep-parser, and what the app code reads.

Shared by the infra tests and by `infra/check.sh` (`python -m tests.infra.bicep_model` parses every Bicep
file and checks every checkov skip has a justification), so CI and the tests read the templates alike.
pycep returns plain JSON-like data; identifiers come back as `pycep.transformer.BicepElement` (a `str`
subclass), literal strings as plain `str` - that is how a variable reference is told apart from a literal.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
MAIN_BICEP = INFRA_DIR / "main.bicep"
STORAGE_BICEP = INFRA_DIR / "app" / "storage.bicep"
PARAMETERS_JSON = INFRA_DIR / "main.parameters.json"
README = REPO_ROOT / "README.md"

# Code that runs in Azure. localdev/ and mcasctl/ run on a developer's machine and are not deployed settings.
APP_CODE_ROOTS = ("shared", "functions", "function_app.py")

# A checkov skip: `#checkov:skip=CKV_AZURE_1:why` or `//checkov:skip=...` (checkov reads both forms).
CHECKOV_SKIP = re.compile(r"(?:#|//)\s*checkov:skip=([A-Za-z0-9_,\-]+)(?::(.*))?$")
MIN_JUSTIFICATION = 20

# Setting names: UPPER_SNAKE with at least one underscore, or the host's AzureWebJobs* family.
SETTING_NAME = re.compile(r"^(?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|AzureWebJobs[A-Za-z0-9_]*)$")
# The app's own namespace: any such literal in app code (outside docstrings) names a setting the app reads,
# even when a helper takes the name as its second argument (`_number(settings, "MCAS_X", ...)`) or a constant.
APP_SETTING_LITERAL = re.compile(r"^MCAS_[A-Z0-9]+(?:_[A-Z0-9]+)*$")
BINDING_EXPRESSION = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    from pycep import BicepParser

    return BicepParser()


def bicep_files() -> list[Path]:
    return sorted(INFRA_DIR.rglob("*.bicep"))


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    """The pycep JSON of one Bicep file (raises ValueError or a lark error if it does not parse)."""
    return cast(dict[str, Any], _parser().parse(file_path=path))


def is_reference(value: object) -> bool:
    from pycep.transformer import BicepElement

    return isinstance(value, BicepElement)


def variables(path: Path) -> dict[str, Any]:
    return {name: decl["value"] for name, decl in parse(path).get("variables", {}).items()}


def resolve_strings(path: Path, value: Any) -> list[str]:
    """A literal list of strings, following references to other variables of the same file."""
    scope = variables(path)
    items = value if isinstance(value, list) else [value]
    resolved: list[str] = []
    for item in items:
        if is_reference(item) and item in scope:
            resolved.extend(resolve_strings(path, scope[item]))
        elif isinstance(item, str) and not is_reference(item):
            resolved.append(item)
        else:
            raise ValueError(f"{path.name}: cannot resolve {item!r} to a literal string")
    return resolved


# ----------------------------------------------------------------------------------------------------
# App settings declared in Bicep
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BicepSetting:
    name: str
    file: Path
    variable: str
    value: Any


def app_settings() -> dict[str, BicepSetting]:
    """Keys of every `*AppSettings` variable (the convention infra/ follows for app settings objects).

    main.bicep's `mcasAppSettings` is passed to app/api.bicep, which merges it with `platformAppSettings` into
    the site's `siteConfig.appSettings`; `app_settings_wiring_problems()` checks each object is used.
    """
    found: dict[str, BicepSetting] = {}
    for path in bicep_files():
        for name, value in variables(path).items():
            if name.lower().endswith("appsettings") and isinstance(value, dict):
                for key, setting_value in value.items():
                    found[str(key)] = BicepSetting(str(key), path, name, setting_value)
    return found


def app_settings_wiring_problems() -> list[str]:
    """An `*AppSettings` variable that nothing uses would satisfy the drift test without reaching the app."""
    problems: list[str] = []
    for path in bicep_files():
        text = path.read_text(encoding="utf-8")
        for name, value in variables(path).items():
            if name.lower().endswith("appsettings") and isinstance(value, dict):
                uses = len(re.findall(rf"\b{re.escape(name)}\b", text))
                if uses < 2:
                    problems.append(
                        f"{path.relative_to(REPO_ROOT)}: variable {name} is declared but never used"
                    )
    api = (INFRA_DIR / "app" / "api.bicep").read_text(encoding="utf-8")
    if "items(union(appSettings, platformAppSettings))" not in api:
        problems.append(
            "infra/app/api.bicep: siteConfig.appSettings no longer merges appSettings and platformAppSettings"
        )
    return problems


# ----------------------------------------------------------------------------------------------------
# Storage layout declared in Bicep
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageLayout:
    queues: tuple[str, ...]
    tables: tuple[str, ...]
    containers: tuple[str, ...]
    discovery_jobs_queue: str
    discovery_logs_container: str

    @property
    def all_queues(self) -> frozenset[str]:
        """Declared queues plus the `<queue>-poison` queue storage.bicep creates for each."""
        return frozenset(self.queues) | {f"{q}-poison" for q in self.queues}


def storage_layout() -> StorageLayout:
    scope = variables(STORAGE_BICEP)
    return StorageLayout(
        queues=tuple(resolve_strings(STORAGE_BICEP, scope["queueNames"])),
        tables=tuple(resolve_strings(STORAGE_BICEP, scope["tableNames"])),
        containers=tuple(resolve_strings(STORAGE_BICEP, scope["containerNames"])),
        discovery_jobs_queue=resolve_strings(STORAGE_BICEP, scope["discoveryJobsQueue"])[0],
        discovery_logs_container=resolve_strings(STORAGE_BICEP, scope["discoveryLogsContainer"])[0],
    )


# ----------------------------------------------------------------------------------------------------
# checkov skips
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckovSkip:
    file: Path
    line: int
    check_ids: tuple[str, ...]
    justification: str


def checkov_skips() -> list[CheckovSkip]:
    skips: list[CheckovSkip] = []
    for path in sorted(INFRA_DIR.rglob("*")):
        if path.suffix not in (".bicep", ".json") or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = CHECKOV_SKIP.search(line.strip())
            if match:
                ids = tuple(i for i in match.group(1).split(",") if i)
                skips.append(CheckovSkip(path, number, ids, (match.group(2) or "").strip()))
    return skips


def unjustified_skips() -> list[CheckovSkip]:
    return [s for s in checkov_skips() if len(s.justification) < MIN_JUSTIFICATION]


# ----------------------------------------------------------------------------------------------------
# Settings and storage names the app code reads
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeRead:
    name: str
    file: Path
    line: int
    how: str  # "literal", "call", "subscript", "binding", "connection", "defaults"

    def where(self) -> str:
        return f"{self.file.relative_to(REPO_ROOT)}:{self.line}"


def app_code_files() -> list[Path]:
    files: list[Path] = []
    for root in APP_CODE_ROOTS:
        path = REPO_ROOT / root
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in sorted(path.rglob("*.py")) if "__pycache__" not in p.parts)
    return files


def _callee_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _expr_text(node: ast.expr) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover - unparse handles every expression the parser produced
        return ""


def _is_read_call(name: str) -> bool:
    """Calls that read a setting by name: env.get, os.getenv, read("X"), settings.get("X"), get_setting."""
    bare = name.lstrip("_").lower()
    return bare in {"get", "getenv", "read", "pop", "setdefault"} or "setting" in bare or "env" in bare


def _is_environment_like(node: ast.expr) -> bool:
    text = _expr_text(node).lower()
    return any(word in text for word in ("environ", "env", "setting", "extra"))


def _string(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _docstring_ids(tree: ast.AST) -> set[int]:
    """Bare string statements (docstrings and the like): prose, not reads."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


def code_reads(files: Iterable[Path] | None = None) -> list[CodeRead]:
    """Every setting name the app code reads, with where it reads it."""
    reads: list[CodeRead] = []
    for path in app_code_files() if files is None else files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        prose = _docstring_ids(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in prose
                and APP_SETTING_LITERAL.match(node.value)
            ):
                reads.append(CodeRead(node.value, path, node.lineno, "literal"))
            if isinstance(node, ast.Call):
                first = _string(node.args[0]) if node.args else None
                if first and SETTING_NAME.match(first) and _is_read_call(_callee_name(node.func)):
                    reads.append(CodeRead(first, path, node.lineno, "call"))
                for keyword in node.keywords:
                    value = _string(keyword.value)
                    if value is None:
                        continue
                    if keyword.arg == "connection" and value and not value.startswith("%"):
                        reads.append(CodeRead(value, path, node.lineno, "connection"))
                    for expression in BINDING_EXPRESSION.findall(value):
                        reads.append(CodeRead(expression, path, node.lineno, "binding"))
            elif isinstance(node, ast.Subscript) and _is_environment_like(node.value):
                key = _string(node.slice)
                if key and SETTING_NAME.match(key):
                    reads.append(CodeRead(key, path, node.lineno, "subscript"))
    reads.extend(defaults_in_code())
    return reads


def defaults_in_code() -> list[CodeRead]:
    """Keys of the DEFAULTS dict in shared/settings.py: read by the app, each with a default."""
    path = REPO_ROOT / "shared" / "settings.py"
    if not path.exists():
        return []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[CodeRead] = []
    for node in tree.body:
        target: ast.expr | None = None
        value: ast.expr | None = None
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        if isinstance(target, ast.Name) and target.id == "DEFAULTS" and isinstance(value, ast.Dict):
            for key in value.keys:
                name = _string(key)
                if name:
                    found.append(CodeRead(name, path, key.lineno if key else node.lineno, "defaults"))
    return found


def code_storage_names() -> list[CodeRead]:
    """Queue, table and container names the app code uses: module constants QUEUE_*/TABLE_*/CONTAINER_* and
    literal queue_name= / table_name= / path= binding arguments."""
    found: list[CodeRead] = []
    for path in app_code_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                name, value = node.targets[0].id, _string(node.value)
                for prefix, kind in (("QUEUE_", "queue"), ("TABLE_", "table"), ("CONTAINER_", "container")):
                    if name.startswith(prefix) and value:
                        found.append(CodeRead(value, path, node.lineno, kind))
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            callee = _callee_name(call.func).lstrip("_")
            literal = _string(call.args[0]) if call.args else None
            for suffix, kind in (
                ("queue_client", "queue"),
                ("table_client", "table"),
                ("container_client", "container"),
            ):
                if literal and callee.endswith(suffix):
                    found.append(CodeRead(literal, path, call.lineno, kind))
            for keyword in call.keywords:
                value = _string(keyword.value)
                if not value or "%" in value or "{" in value:
                    continue
                if keyword.arg == "queue_name":
                    found.append(CodeRead(value, path, call.lineno, "queue"))
                elif keyword.arg == "table_name":
                    found.append(CodeRead(value, path, call.lineno, "table"))
                elif keyword.arg == "path" and "/" in value:
                    found.append(CodeRead(value.split("/", 1)[0], path, call.lineno, "container"))
    return found


# ----------------------------------------------------------------------------------------------------
# The README settings table (maintained by the lead): rows like | `NAME` | default | meaning |
# ----------------------------------------------------------------------------------------------------

_README_ROW = re.compile(r"^\|\s*`?([A-Za-z_][A-Za-z0-9_]*)`?\s*\|([^|]*)\|")
_NO_DEFAULT = re.compile(r"^[\s\-\u2013\u2014`*_]*$")


def readme_defaults(readme: Path = README) -> dict[str, str]:
    """Settings the README documents with a default.

    A row counts unless its default cell is blank or a dash, or says "required": "unset" / "none" / "(empty)"
    are documented defaults too (the app works without the setting).
    """
    if not readme.exists():
        return {}
    documented: dict[str, str] = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        match = _README_ROW.match(line.strip())
        if not match:
            continue
        name, default = match.group(1), match.group(2).strip()
        if not SETTING_NAME.match(name) or _NO_DEFAULT.match(default) or "required" in default.lower():
            continue
        documented[name] = default
    return documented


def main(argv: list[str] | None = None) -> int:
    """Parse every Bicep file and check the checkov skips; print one line per file."""
    failures = 0
    for path in bicep_files():
        try:
            parsed = parse(path)
        except Exception as exc:
            failures += 1
            print(
                f"FAIL  {path.relative_to(REPO_ROOT)}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            )
            continue
        counts = {
            key: len(parsed.get(key, {})) for key in ("parameters", "variables", "resources", "outputs")
        }
        summary = ", ".join(f"{n} {key}" for key, n in counts.items())
        print(f"ok    {path.relative_to(REPO_ROOT)} ({summary})")
    for skip in unjustified_skips():
        failures += 1
        print(
            f"FAIL  {skip.file.relative_to(REPO_ROOT)}:{skip.line}: checkov skip of "
            f"{','.join(skip.check_ids)} needs a justification of at least {MIN_JUSTIFICATION} characters"
        )
    print(f"{len(bicep_files())} Bicep files, {len(checkov_skips())} checkov skips, {failures} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
