"""Static checks of infra/: it parses, azd can wire it, it is documented, and it grants no more than it must.

checkov (run by infra/check.sh) covers generic security rules; these tests pin this project's own decisions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra import bicep_model as model

ROLE = {
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
}


def _resources(relative: str) -> dict[str, Any]:
    return dict(model.parse(model.INFRA_DIR / relative)["resources"])


def _body(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource body, unwrapped from a loop or a condition."""
    config: dict[str, Any] = resource["config"]
    return config["config"] if "loop_type" in config or "condition" in config else config


@pytest.mark.parametrize("path", model.bicep_files(), ids=lambda p: str(p.relative_to(model.INFRA_DIR)))
def test_bicep_file_parses(path: Path) -> None:
    parsed = model.parse(path)
    assert parsed["resources"] or parsed.get("modules"), f"{path} declares nothing"


def test_every_checkov_skip_is_justified() -> None:
    assert model.checkov_skips(), "expected the documented skips (see infra/README.md)"
    assert model.unjustified_skips() == []


def test_no_registry_modules() -> None:
    """CI reaches no Bicep registry, and checkov cannot follow br:/ts: references offline."""
    for path in model.bicep_files():
        for module in model.parse(path).get("modules", {}).values():
            assert module["type"] == "local", f"{path}: module {module['detail']}"


@pytest.mark.parametrize("path", model.bicep_files(), ids=lambda p: str(p.relative_to(model.INFRA_DIR)))
def test_every_parameter_has_a_description(path: Path) -> None:
    for name, parameter in model.parse(path)["parameters"].items():
        kinds = {decorator["type"] for decorator in parameter["decorators"]}
        assert "description" in kinds, f"{path.name}: parameter {name}"


def test_azure_yaml_service_matches_the_site_tag() -> None:
    text = (model.REPO_ROOT / "azure.yaml").read_text(encoding="utf-8")
    service = re.search(r"^services:\s*\n\s+(\w+):\s*\n((?:\s{4,}.*\n?)+)", text, re.MULTILINE)
    assert service, "azure.yaml declares no service"
    name, body = service.group(1), service.group(2)
    assert name == "api"
    assert re.search(r"^\s+language:\s*python\s*$", body, re.MULTILINE)
    assert re.search(r"^\s+host:\s*function\s*$", body, re.MULTILINE)
    assert re.search(r"^\s+project:\s*\.\s*$", body, re.MULTILINE)
    api_module = model.parse(model.MAIN_BICEP)["modules"]["api"]["config"]["params"]
    assert api_module["serviceName"] == name
    site = _resources("app/api.bicep")["site"]["config"]
    assert "azd-service-name" in json.dumps(site["tags"])


def test_parameters_file_maps_the_required_parameters_from_the_environment() -> None:
    declared = model.parse(model.MAIN_BICEP)["parameters"]
    mapped = json.loads(model.PARAMETERS_JSON.read_text(encoding="utf-8"))["parameters"]
    assert set(mapped) <= set(declared), f"unknown parameters: {set(mapped) - set(declared)}"
    required = {name for name, p in declared.items() if p["default"] is None}
    assert required <= set(mapped), f"required parameters azd cannot fill: {required - set(mapped)}"
    for name, entry in mapped.items():
        assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*(=[^}]*)?\}", entry["value"]), f"{name}: {entry['value']}"
    assert mapped["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert mapped["location"]["value"] == "${AZURE_LOCATION}"
    assert mapped["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"


def test_infra_readme_documents_every_main_parameter() -> None:
    readme = (model.INFRA_DIR / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\|\s*`(\w+)`\s*\|", readme, re.MULTILINE))
    missing = set(model.parse(model.MAIN_BICEP)["parameters"]) - documented
    assert not missing, f"add these parameters to the table in infra/README.md: {sorted(missing)}"


def _role_ids(value: Any, variables: dict[str, Any]) -> set[str]:
    """Role ids named by a role assignment's loop array, resolving `roles.x` through the `roles` variable."""
    names = variables[value] if isinstance(value, str) and value in variables else value
    ids: set[str] = set()
    for item in names if isinstance(names, list) else [names]:
        text = json.dumps(item)
        for key, role_id in variables["roles"].items():
            if re.search(rf"\b{key}\b", text):
                ids.add(role_id)
    return ids


def test_the_identity_gets_exactly_the_roles_it_needs() -> None:
    path = model.INFRA_DIR / "app" / "rbac.bicep"
    variables = model.variables(path)
    resources = _resources("app/rbac.bicep")
    storage = resources["identityStorage"]["config"]
    assert storage["config"]["scope"] == "storage"
    granted = _role_ids(storage["loop_type"]["detail"]["array_name"], variables)
    assert {ROLE[r] for r in granted} == {
        "Storage Blob Data Owner",
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
    }
    vault = _body(resources["identityVault"])
    assert vault["scope"] == "vault"
    assert {ROLE[r] for r in _role_ids(vault["name"], variables)} == {"Key Vault Secrets User"}
    telemetry = _body(resources["identityTelemetry"])
    assert telemetry["scope"] == "applicationInsights"
    assert {ROLE[r] for r in _role_ids(telemetry["name"], variables)} == {"Monitoring Metrics Publisher"}
    identity_assignments = [
        name
        for name, r in resources.items()
        if "identityPrincipalId" in json.dumps(_body(r).get("properties", {}))
    ]
    assert sorted(identity_assignments) == [
        "identityLogsIngestion",
        "identityStorage",
        "identityTelemetry",
        "identityVault",
    ]
    logs = _body(resources["identityLogsIngestion"])
    assert logs["scope"] == "dataCollectionRule"
    assert {ROLE[r] for r in _role_ids(logs["name"], variables)} == {"Monitoring Metrics Publisher"}


def test_developer_roles_only_when_a_principal_is_given() -> None:
    resources = _resources("app/rbac.bicep")
    for name in ("developerStorage", "developerVault"):
        assert resources[name]["config"]["condition"] is not None, name


def test_event_grid_may_only_send_to_the_discovery_queue() -> None:
    resources = _resources("app/discovery-events.bicep")
    assignment = _body(resources["topicSendsToQueue"])
    assert assignment["scope"] == "queue"
    role = model.variables(model.INFRA_DIR / "app" / "discovery-events.bicep")["queueMessageSenderRoleId"]
    assert ROLE[role] == "Storage Queue Data Message Sender"
    assert resources["queue"]["existing"] is True


def test_storage_account_hardening() -> None:
    props = _body(_resources("app/storage.bicep")["storage"])["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True


def test_key_vault_is_rbac_with_soft_delete_and_purge_protection() -> None:
    props = _body(_resources("app/keyvault.bicep")["vault"])["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert props["publicNetworkAccess"] == "publicNetworkAccess"  # a parameter


def test_application_insights_accepts_only_entra_authenticated_telemetry() -> None:
    props = _body(_resources("app/monitoring.bicep")["applicationInsights"])["properties"]
    assert props["DisableLocalAuth"] is True
    assert props["WorkspaceResourceId"]


def test_function_app_is_flex_consumption_python_311() -> None:
    resources = _resources("app/api.bicep")
    assert _body(resources["plan"])["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = _body(resources["site"])
    runtime = site["properties"]["functionAppConfig"]["runtime"]
    # azure-functions 1.26 (the app's pin) runs on Python 3.11; 2.x would need 3.13.
    assert runtime == {"name": "python", "version": "3.11"}
    assert site["properties"]["httpsOnly"] is True
    assert site["identity"]["type"] == "UserAssigned"
    deployment = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"
