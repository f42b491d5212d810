#!/usr/bin/env bash
# Infrastructure checks for CI and developers (run from anywhere: bash infra/check.sh):
#   1. every Bicep file parses with pycep-parser and every checkov skip carries a justification;
#   2. checkov over infra/ reports no failed check and no parsing error.
# checkov runs from its own venv (.local/checkov-venv, rebuilt when infra/requirements-checkov.txt changes):
# it pins packaging<24, which conflicts with pytest in the project venv.
# Environment: PYTHON (default .venv/bin/python, needs requirements-infra.txt), CHECKOV_VENV.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CHECKOV_VENV="${CHECKOV_VENV:-$ROOT/.local/checkov-venv}"
CHECKOV_REQUIREMENTS="$ROOT/infra/requirements-checkov.txt"

if ! "$PYTHON" -c "import pycep" 2>/dev/null; then
  echo "infra/check.sh: pycep-parser is not installed; run: $PYTHON -m pip install -r requirements-infra.txt" >&2
  exit 2
fi

echo "== Bicep parse (pycep-parser) and checkov skip justifications"
start=$SECONDS
"$PYTHON" -m tests.infra.bicep_model
echo "   ($((SECONDS - start)) s)"

wanted="$(sha256sum "$CHECKOV_REQUIREMENTS" | cut -d' ' -f1)"
stamp="$CHECKOV_VENV/.requirements.sha256"
if [ ! -x "$CHECKOV_VENV/bin/checkov" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  echo "== Installing checkov into $CHECKOV_VENV"
  start=$SECONDS
  rm -rf "$CHECKOV_VENV"
  "$PYTHON" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$CHECKOV_REQUIREMENTS"
  echo "$wanted" > "$stamp"
  echo "   ($((SECONDS - start)) s)"
fi

echo "== checkov $("$CHECKOV_VENV/bin/checkov" --version) over infra/ (bicep, arm)"
start=$SECONDS
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
# Exit status is judged from the JSON report below (failed checks, parsing errors, nothing scanned).
"$CHECKOV_VENV/bin/checkov" --directory infra --framework bicep arm --skip-download --output json \
  > "$report" 2>/dev/null || true
"$PYTHON" - "$report" <<'PY'
"""Summarise checkov's JSON report; fail on any failed check, parsing error, or an empty scan."""
import json
import sys

with open(sys.argv[1], encoding="utf-8") as handle:
    data = json.load(handle)
reports = data if isinstance(data, list) else [data]
passed = failed = skipped = parse_errors = resources = 0
for report in reports:
    summary = report.get("summary", report)
    passed += summary.get("passed", 0)
    failed += summary.get("failed", 0)
    skipped += summary.get("skipped", 0)
    parse_errors += summary.get("parsing_errors", 0)
    resources += summary.get("resource_count", 0)
    results = report.get("results", {})
    for check in results.get("failed_checks", []):
        lines = check.get("file_line_range") or ["?", "?"]
        print(f"   FAILED {check['check_id']} {check['resource']} infra{check['file_path']}:{lines[0]}-{lines[1]}")
        print(f"          {check['check_name']}")
    for path in results.get("parsing_errors", []):
        print(f"   PARSING ERROR {path}")
print(f"   passed {passed}, failed {failed}, skipped {skipped} (justified inline), parsing errors {parse_errors}, "
      f"resources {resources}")
if failed or parse_errors or resources == 0:
    sys.exit(1)
PY
echo "   ($((SECONDS - start)) s)"
echo "infra checks passed"
