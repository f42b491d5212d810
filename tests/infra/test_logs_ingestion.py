"""The Log Analytics / Sentinel destination of the `logs` sink, as infra/ deploys it, and its workbook.

shared/alerts/logs_table.json is the table schema the sink builds its rows from;
infra/app/logs-ingestion.bicep mirrors it in the custom table and the rule's stream declaration. These tests
keep the two equal, keep the rule in the shape the Logs Ingestion API needs, and keep the workbook's queries
on columns and metrics that exist. Logs Ingestion API:
https://learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from tests.infra import bicep_model as model

LOGS_BICEP = model.INFRA_DIR / "app" / "logs-ingestion.bicep"
WORKBOOK_BICEP = model.INFRA_DIR / "app" / "workbook.bicep"
WORKBOOK_JSON = model.INFRA_DIR / "workbooks" / "mcas-operations.workbook.json"
TABLE_JSON = model.REPO_ROOT / "shared" / "alerts" / "logs_table.json"
TABLE = "MDAAlerts_CL"
STREAM = "Custom-MDAAlerts_CL"

# Logs Ingestion API overview ("Custom table" requirements) and the workspace limits.
RESERVED_COLUMNS = {"_ResourceId", "id", "_SubscriptionId", "TenantId", "Type", "UniqueId", "Title"}
COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,44}$")
# Types a DCR stream declaration accepts (data collection rule structure).
STREAM_TYPES = {"string", "int", "long", "real", "boolean", "dynamic", "datetime"}
# A few of the functions "Supported KQL features in Azure Monitor transformations" lists; not, e.g., coalesce,
# replace_string or bag_keys. https://learn.microsoft.com/azure/azure-monitor/data-collection/
# data-collection-transformations-kql
TRANSFORM_FUNCTIONS = {"iif", "case", "isnull", "isnotnull", "now", "todatetime", "tostring", "tolong"}
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"


def _table_schema() -> list[dict[str, str]]:
    return list(json.loads(TABLE_JSON.read_text(encoding="utf-8")))


def _logs() -> dict[str, Any]:
    return model.parse(LOGS_BICEP)


def _columns() -> set[str]:
    return {column["name"] for column in _table_schema()}


# ----------------------------------------------------------------------------------------------------
# The table schema
# ----------------------------------------------------------------------------------------------------


def test_table_schema_file_is_flat_typed_and_avoids_reserved_names() -> None:
    schema = _table_schema()
    assert schema[0] == {"name": "TimeGenerated", "type": "datetime"}
    names = [column["name"] for column in schema]
    assert len(names) == len(set(names)), "duplicate column"
    for column in schema:
        assert set(column) == {"name", "type"}, column
        assert COLUMN_NAME.match(column["name"]), column
        assert column["type"] in STREAM_TYPES, column
    assert not {name.lower() for name in names} & {name.lower() for name in RESERVED_COLUMNS}
    # The dedupe key and the raw record a consumer falls back on.
    types = {column["name"]: column["type"] for column in schema}
    assert types["AlertId"] == "string" and types["AlertVersion"] == "long"
    assert types["RawRecord"] == "dynamic"


def test_bicep_table_and_stream_mirror_the_schema_file() -> None:
    variables = model.variables(LOGS_BICEP)
    assert variables["columns"] == _table_schema(), (
        "infra/app/logs-ingestion.bicep differs from logs_table.json"
    )
    resources = _logs()["resources"]
    table = resources["table"]["config"]
    assert table["name"] == "tableName" and variables["tableName"] == TABLE
    assert table["properties"]["schema"]["columns"] == "columns"
    assert table["properties"]["schema"]["name"] == "tableName"
    declarations = resources["rule"]["config"]["properties"]["streamDeclarations"]
    assert {key: value["columns"] for key, value in declarations.items()} == {"'${streamName}'": "columns"}


def test_the_rule_is_direct_and_flows_the_stream_into_the_table() -> None:
    variables = model.variables(LOGS_BICEP)
    assert variables["streamName"] == "Custom-${tableName}"
    assert variables["streamName"].replace("${tableName}", variables["tableName"]) == STREAM
    rule = _logs()["resources"]["rule"]
    assert rule["type"] == "Microsoft.Insights/dataCollectionRules"
    config = rule["config"]
    assert config["kind"] == "Direct", "only a Direct rule has its own logs ingestion endpoint"
    assert config["dependsOn"] == ["table"], "the table must exist before the rule"
    properties = config["properties"]
    destination = properties["destinations"]["logAnalytics"]
    assert len(destination) == 1
    (flow,) = properties["dataFlows"]
    assert flow["streams"] == ["streamName"]
    assert flow["outputStream"] == "streamName"
    assert flow["destinations"] == [destination[0]["name"]]
    assert flow["transformKql"] == "transformKql"
    transform = variables["transformKql"]
    assert transform.startswith("source")
    # Transformations run per record (no aggregation, join or union) and allow only listed functions.
    assert not re.search(r"\b(summarize|join|union|make-series|top|sort|distinct)\b", transform)
    called = set(re.findall(r"\b([a-z_]+)\s*\(", transform))
    assert called <= TRANSFORM_FUNCTIONS, f"not allowed in a transformation: {called - TRANSFORM_FUNCTIONS}"
    outputs = _logs()["outputs"]
    assert "rule.properties.endpoints.logsIngestion" in _text(outputs["logsIngestionEndpoint"]["value"])
    assert "rule.properties.immutableId" in _text(outputs["immutableId"]["value"])


def test_the_identity_may_publish_to_this_rule_only() -> None:
    resources = model.parse(model.INFRA_DIR / "app" / "rbac.bicep")["resources"]
    assignment = resources["identityLogsIngestion"]["config"]
    assert assignment["condition"] == "withLogsIngestion"
    body = assignment["config"]
    assert body["scope"] == "dataCollectionRule"
    assert body["properties"]["principalId"] == "identityPrincipalId"
    assert body["properties"]["principalType"] == "ServicePrincipal"
    roles = model.variables(model.INFRA_DIR / "app" / "rbac.bicep")["roles"]
    assert roles["monitoringMetricsPublisher"] == MONITORING_METRICS_PUBLISHER
    assert "monitoringMetricsPublisher" in json.dumps(body["properties"]["roleDefinitionId"])
    assert resources["dataCollectionRule"]["existing"] is True


def test_main_switches_it_on_by_default_and_wires_the_settings() -> None:
    main = model.parse(model.MAIN_BICEP)
    switch = main["parameters"]["logsIngestionEnabled"]
    assert switch["type"] == "bool" and switch["default"] is True
    for name in ("logsIngestion", "workbook"):
        assert main["modules"][name]["config"]["condition"] == "logsIngestionEnabled", name
    rbac = main["modules"]["rbac"]["config"]["params"]
    assert "logsIngestion.outputs.dataCollectionRuleName" in _text(rbac["dataCollectionRuleName"])
    settings = model.app_settings()
    expected = {
        "MCAS_LOGS_INGESTION_ENDPOINT": "logsIngestionEndpoint",
        "MCAS_LOGS_DCR_IMMUTABLE_ID": "immutableId",
        "MCAS_LOGS_STREAM": "streamName",
    }
    for name, output in expected.items():
        assert f"logsIngestion.outputs.{output}" in _text(settings[name].value), name
    sinks = _text(settings["MCAS_ALERT_SINKS"].value)
    assert "queue,logs" in sinks, "the deployed default sinks include logs when the switch is on"


def _text(value: Any) -> str:
    """A parsed expression as text, property accesses joined with dots (`a.outputs.b`)."""

    def render(node: Any) -> Any:
        if isinstance(node, dict):
            operator = node.get("operator")
            if isinstance(operator, dict) and operator.get("type") == "property_accessor":
                operands = operator["operands"]
                return f"{render(operands['operand_1'])}.{render(operands['operand_2'])}"
            return {key: render(item) for key, item in node.items()}
        if isinstance(node, list):
            return [render(item) for item in node]
        return node

    return json.dumps(render(value))


def test_readme_documents_the_logs_settings() -> None:
    documented = model.readme_defaults()
    assert documented["MCAS_LOGS_STREAM"].strip("`") == STREAM
    for name in ("MCAS_LOGS_INGESTION_ENDPOINT", "MCAS_LOGS_DCR_IMMUTABLE_ID"):
        assert name in documented, name


# ----------------------------------------------------------------------------------------------------
# The workbook
# ----------------------------------------------------------------------------------------------------


def _workbook() -> dict[str, Any]:
    return dict(json.loads(WORKBOOK_JSON.read_text(encoding="utf-8")))


def _queries() -> dict[str, dict[str, Any]]:
    return {item["name"]: item["content"] for item in _workbook()["items"] if item["type"] == 3}


def kql_names(query: str) -> tuple[set[str], set[str], set[str]]:
    """(identifiers used, names the query defines, string literals) of a KQL query, roughly but safely:
    comments, string literals and workbook {parameters} are removed first; of `x.y` only `x` is kept."""
    query = re.sub(r"//[^\n]*", "", query)
    literals = set(re.findall(r'"([^"]*)"', query))
    bare = re.sub(r'"[^"]*"', '""', query)
    bare = re.sub(r"\{[A-Za-z_][A-Za-z0-9_:]*\}", "", bare)
    used = set(re.findall(r"(?<![.\w])([A-Za-z_][A-Za-z0-9_]*)", bare))
    defined = set(re.findall(r"(?<![.\w])([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)", bare))
    return used, defined, literals


def _function_names() -> set[str]:
    names: set[str] = set()
    for path in sorted((model.REPO_ROOT / "functions").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "function_name":
                for keyword in node.keywords:
                    if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                        names.add(str(keyword.value.value))
    return names


def test_workbook_is_a_valid_workbook_with_the_required_panels() -> None:
    workbook = _workbook()
    assert workbook["version"] == "Notebook/1.0"
    assert workbook["fallbackResourceIds"] == ["__WORKSPACE_ID__"]
    queries = _queries()
    assert {
        "alerts-by-severity",
        "alerts-by-tenant",
        "pull-lag",
        "throttling-and-tokens",
        "upload-bytes",
        "upload-failures",
        "dead-letters",
    } <= set(queries)
    for name, content in queries.items():
        assert content["version"] == "KqlItem/1.0", name
        assert content["queryType"] == 0, name
        assert content["timeContextFromParameter"] == "TimeRange", name
        expected = {
            "microsoft.operationalinsights/workspaces": ["__WORKSPACE_ID__"],
            "microsoft.insights/components": ["__APP_INSIGHTS_ID__"],
        }[content["resourceType"]]
        assert content["crossComponentResources"] == expected, name
    parameters = next(item for item in workbook["items"] if item["type"] == 9)["content"]["parameters"]
    assert [p["name"] for p in parameters] == ["TimeRange"]


def test_workbook_table_queries_use_only_columns_of_the_table() -> None:
    columns = _columns()
    checked = 0
    for name, content in _queries().items():
        query = content["query"]
        if not query.lstrip().startswith(TABLE):
            continue
        checked += 1
        used, defined, _ = kql_names(query)
        # KQL operators and functions are lowercase; columns and the names a query defines are capitalised.
        unknown = {word for word in used if word[0].isupper()} - columns - defined - {TABLE}
        assert not unknown, f"{name}: not columns of {TABLE}: {sorted(unknown)}"
        assert used & columns, name
    assert checked >= 3


def test_the_column_check_catches_an_unknown_column() -> None:
    used, defined, _ = kql_names(
        'MDAAlerts_CL | where Sevrity == "High" | summarize N = count() by MdaTenant'
    )
    assert {w for w in used if w[0].isupper()} - _columns() - defined - {TABLE} == {"Sevrity"}


def test_workbook_metric_queries_name_metrics_and_functions_the_app_has() -> None:
    from shared.telemetry import METER_NAME, METRICS

    functions = _function_names()
    assert "discovery_upload" in functions
    metric_names = 0
    for name, content in _queries().items():
        if content["resourceType"] != "microsoft.insights/components":
            continue
        query = content["query"]
        for metric in re.findall(r'name == "([^"]+)"', query):
            if metric.startswith(f"{METER_NAME}."):
                metric_names += 1
                assert metric.removeprefix(f"{METER_NAME}.") in METRICS, f"{name}: unknown metric {metric}"
            else:
                assert metric in functions, f"{name}: no function named {metric}"
    assert metric_names >= 5


def test_workbook_bicep_fills_both_placeholders_from_the_json_it_loads() -> None:
    variables = model.variables(WORKBOOK_BICEP)
    template = json.dumps(variables["template"])
    assert "mcas-operations.workbook.json" in template
    assert (WORKBOOK_BICEP.parent / "../workbooks/mcas-operations.workbook.json").resolve() == WORKBOOK_JSON
    filled = json.dumps(variables["serializedData"])
    for placeholder, source in (
        ("__WORKSPACE_ID__", "workspaceId"),
        ("__APP_INSIGHTS_ID__", "applicationInsightsId"),
    ):
        assert placeholder in filled and source in filled
        assert placeholder in WORKBOOK_JSON.read_text(encoding="utf-8")
    resource = model.parse(WORKBOOK_BICEP)["resources"]["workbook"]
    assert resource["type"] == "Microsoft.Insights/workbooks"
    assert resource["config"]["properties"]["serializedData"] == "serializedData"


def test_rendered_picture_is_committed() -> None:
    picture = model.REPO_ROOT / "docs" / "workbook" / "mcas-operations.png"
    assert picture.exists(), "run docs/workbook/render.py (see its docstring)"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
