"""The templates deploy on Flex Consumption as Azure accepts it today.

Nothing can be deployed from CI, so these checks stand in for the deployment: the Bicep (parsed with pycep, as
checkov parses it) must not carry a site property or app setting that Flex Consumption deprecates or refuses,
and the deployment choices that make `azd up` repeatable (Key Vault redeploy, principal type, remote build,
the instance cap, API versions) must stay in place.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra import bicep_model as model

# "Flex Consumption plan deprecations", App settings reference for Azure Functions (ms.date 2025-12-22):
# https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations
# Each entry: the setting or property, and the reason the table gives.
FLEX_DEPRECATED_APP_SETTINGS: dict[str, str] = {
    "ENABLE_ORYX_BUILD": "Replaced by the remoteBuild parameter when deploying in Flex Consumption",
    "FUNCTIONS_EXTENSION_VERSION": "App Setting is set by the backend",
    "FUNCTIONS_WORKER_RUNTIME": "Replaced by name in properties.functionAppConfig.runtime",
    "FUNCTIONS_WORKER_RUNTIME_VERSION": "Replaced by version in properties.functionAppConfig.runtime",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY": "Replaced by scale and concurrency's trigger section",
    "FUNCTIONS_WORKER_PROCESS_COUNT": "Setting not valid",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED": "Setting not valid",
    "SCM_DO_BUILD_DURING_DEPLOYMENT": (
        "Replaced by the remoteBuild parameter when deploying in Flex Consumption"
    ),
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "Replaced by functionAppConfig's deployment section",
    "WEBSITE_CONTENTOVERVNET": "Not used for networking in Flex Consumption",
    "WEBSITE_CONTENTSHARE": "Replaced by functionAppConfig's deployment section",
    "WEBSITE_DNS_SERVER": "DNS is inherited from the integrated virtual network in Flex",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT": "Replaced by maximumInstanceCount in scaleAndConcurrency",
    "WEBSITE_NODE_DEFAULT_VERSION": "Replaced by version in properties.functionAppConfig.runtime",
    "WEBSITE_RUN_FROM_PACKAGE": "Not used for deployments in Flex Consumption",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION": "Content share isn't used in Flex Consumption",
    "WEBSITE_VNET_ROUTE_ALL": "Not used for networking in Flex Consumption",
}
FLEX_DEPRECATED_SITE_PROPERTIES: dict[str, str] = {
    "alwaysOn": "Not valid",
    "containerSize": "Renamed as instanceMemoryMB",
    "dnsConfiguration": "Custom DNS servers configured in the Azure Virtual Network are automatically used",
    "ftpsState": "FTPS not supported",
    "isReserved": "Not valid",
    "IsXenon": "Not valid",
    "javaVersion": "Replaced by version in properties.functionAppConfig.runtime",
    "LinuxFxVersion": "Replaced by properties.functionAppConfig.runtime",
    "netFrameworkVersion": "Replaced by version in properties.functionAppConfig.runtime",
    "powerShellVersion": "Replaced by version in properties.functionAppConfig.runtime",
    "functionAppScaleLimit": "Renamed as maximumInstanceCount",
    "preWarmedInstanceCount": "Renamed as alwaysReadyInstances",
    "use32BitWorkerProcess": "32-bit not supported",
    "vnetBackupRestoreEnabled": "Not used for networking in Flex Consumption",
    "vnetContentShareEnabled": "Not used for networking in Flex Consumption",
    "vnetImagePullEnabled": "Not used for networking in Flex Consumption",
    "vnetRouteAllEnabled": "Not used for networking in Flex Consumption",
    "windowsFxVersion": "Not valid",
}
# "Considerations" of the Flex Consumption plan page (https://learn.microsoft.com/azure/azure-functions/
# flex-consumption-plan#considerations): settings that are not supported there either.
FLEX_UNSUPPORTED_APP_SETTINGS: dict[str, str] = {
    "WEBSITE_TIME_ZONE": "Timezones are not supported on Flex Consumption",
    "TZ": "Timezones are not supported on Flex Consumption",
    "WEBSITE_LOAD_CERTIFICATES": "Platform certificate loading is not supported on Flex Consumption",
}

# Newest GA API version of each resource type the templates use, checked on the Bicep/ARM template reference
# (https://learn.microsoft.com/azure/templates/) when the templates moved to them. Moving a type forward means
# changing it here too, after checking that pycep and checkov still read the templates (infra/check.sh).
API_VERSIONS: dict[str, str] = {
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    "Microsoft.EventGrid/systemTopics": "2025-02-15",
    "Microsoft.EventGrid/systemTopics/eventSubscriptions": "2025-02-15",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Insights/dataCollectionRules": "2024-03-11",
    "Microsoft.Insights/workbooks": "2023-06-01",
    "Microsoft.KeyVault/vaults": "2024-11-01",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2024-11-30",
    "Microsoft.OperationalInsights/workspaces": "2025-07-01",
    "Microsoft.OperationalInsights/workspaces/tables": "2025-07-01",
    "Microsoft.Resources/resourceGroups": "2025-04-01",
    "Microsoft.Storage/storageAccounts": "2025-01-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2025-01-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2025-01-01",
    "Microsoft.Storage/storageAccounts/queueServices": "2025-01-01",
    "Microsoft.Storage/storageAccounts/queueServices/queues": "2025-01-01",
    "Microsoft.Storage/storageAccounts/tableServices": "2025-01-01",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "2025-01-01",
    "Microsoft.Web/serverfarms": "2024-11-01",
    "Microsoft.Web/sites": "2024-11-01",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": "2024-11-01",
}


def _unquote(key: object) -> str:
    return str(key).strip("'")


def _walk(value: Any) -> Iterator[tuple[str | None, Any]]:
    """Every (key, value) pair of a parsed Bicep value, depth first; list items come with key None."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield _unquote(key), item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield None, item
            yield from _walk(item)


def _strings(value: Any) -> Iterator[str]:
    """Keys and literal string values of a parsed Bicep value (setting names appear as either)."""
    for key, item in _walk(value):
        if key is not None:
            yield key
        if isinstance(item, str):
            yield item


def site_property_violations(paths: list[Path]) -> list[str]:
    deprecated = {name.lower(): name for name in FLEX_DEPRECATED_SITE_PROPERTIES}
    found: list[str] = []
    for path in paths:
        for symbol, resource in model.parse(path).get("resources", {}).items():
            if not str(resource.get("type", "")).startswith("Microsoft.Web/sites"):
                continue
            for key, _ in _walk(resource["config"]):
                if key is not None and key.lower() in deprecated:
                    name = deprecated[key.lower()]
                    found.append(
                        f"{path.name}: {symbol} sets {key} ({FLEX_DEPRECATED_SITE_PROPERTIES[name]})"
                    )
    return found


def app_setting_violations(paths: list[Path]) -> list[str]:
    refused = {**FLEX_DEPRECATED_APP_SETTINGS, **FLEX_UNSUPPORTED_APP_SETTINGS}
    by_lower = {name.lower(): name for name in refused}
    found: list[str] = []
    for path in paths:
        for text in _strings(model.parse(path)):
            name = by_lower.get(text.lower())
            if name:
                found.append(f"{path.name}: {text} ({refused[name]})")
    return found


def test_no_site_property_that_flex_consumption_deprecates() -> None:
    assert site_property_violations(model.bicep_files()) == []


def test_no_app_setting_that_flex_consumption_deprecates() -> None:
    assert app_setting_violations(model.bicep_files()) == []
    settings = {name.lower() for name in model.app_settings()}
    refused = {name.lower() for name in (*FLEX_DEPRECATED_APP_SETTINGS, *FLEX_UNSUPPORTED_APP_SETTINGS)}
    assert not settings & refused


def test_the_guard_finds_what_it_guards_against(tmp_path: Path) -> None:
    """The two scans on a site written the classic way, so a parser change cannot make them pass vacuously."""
    classic = tmp_path / "classic.bicep"
    classic.write_text(
        textwrap.dedent(
            """
            param name string
            var classicAppSettings = {
              FUNCTIONS_WORKER_RUNTIME: 'python'
            }
            resource site 'Microsoft.Web/sites@2024-11-01' = {
              name: name
              location: 'westeurope'
              properties: {
                siteConfig: {
                  ftpsState: 'Disabled'
                  linuxFxVersion: 'Python|3.11'
                  appSettings: [
                    {
                      name: 'WEBSITE_RUN_FROM_PACKAGE'
                      value: '1'
                    }
                  ]
                }
              }
            }
            """
        ),
        encoding="utf-8",
    )
    properties = site_property_violations([classic])
    assert any("ftpsState" in line for line in properties)
    assert any("linuxFxVersion" in line for line in properties)
    settings = app_setting_violations([classic])
    assert any("FUNCTIONS_WORKER_RUNTIME" in line for line in settings)
    assert any("WEBSITE_RUN_FROM_PACKAGE" in line for line in settings)


def test_the_site_keeps_its_transport_hardening_and_skips_ftps_with_a_reason() -> None:
    site = model.parse(model.INFRA_DIR / "app" / "api.bicep")["resources"]["site"]["config"]
    site_config = site["properties"]["siteConfig"]
    assert site_config["minTlsVersion"] == "1.2"
    assert site_config["http20Enabled"] is True
    assert site["properties"]["httpsOnly"] is True
    skips = [s for s in model.checkov_skips() if "CKV_AZURE_78" in s.check_ids]
    assert len(skips) == 1 and skips[0].file.name == "api.bicep"
    assert "Flex Consumption" in skips[0].justification


def test_publishing_credentials_only_scm_and_off() -> None:
    """Flex Consumption has no FTP endpoint; SCM basic auth stays off (azd deploys with an Entra ID token)."""
    policies = [
        resource["config"]
        for resource in model.parse(model.INFRA_DIR / "app" / "api.bicep")["resources"].values()
        if resource["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    ]
    assert [(p["name"], p["properties"]["allow"]) for p in policies] == [("scm", False)]


def test_every_resource_uses_the_newest_ga_api_version() -> None:
    used: dict[str, set[str]] = {}
    for path in model.bicep_files():
        for resource in model.parse(path).get("resources", {}).values():
            used.setdefault(resource["type"], set()).add(resource["api_version"])
    unknown = sorted(set(used) - set(API_VERSIONS))
    assert not unknown, f"add the newest GA API version of these types to API_VERSIONS: {unknown}"
    stale = {kind: sorted(versions) for kind, versions in used.items() if versions != {API_VERSIONS[kind]}}
    assert not stale, f"resource types not on their newest GA API version: {stale}"
    assert not any("preview" in v for v in API_VERSIONS.values())


def test_azd_builds_the_python_package_remotely() -> None:
    text = (model.REPO_ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert re.search(r"^    remoteBuild:\s*true\s*$", text, re.MULTILINE), (
        "azure.yaml: api needs remoteBuild: true"
    )


# ----------------------------------------------------------------------------------------------------
# `azd down` then `azd up`, and CI sign-in
# ----------------------------------------------------------------------------------------------------


def _parameters_json() -> dict[str, str]:
    mapped = json.loads(model.PARAMETERS_JSON.read_text(encoding="utf-8"))["parameters"]
    return {name: entry["value"] for name, entry in mapped.items()}


def test_key_vault_redeploy_path_keeps_purge_protection() -> None:
    """After `azd down` the name stays taken for 90 days: a salt names a new vault, recover brings it back."""
    vault = model.parse(model.INFRA_DIR / "app" / "keyvault.bicep")["resources"]["vault"]["config"]
    assert vault["properties"]["enablePurgeProtection"] is True
    assert vault["properties"]["createMode"] == "createMode"
    kv_params = model.parse(model.INFRA_DIR / "app" / "keyvault.bicep")["parameters"]
    allowed = next(d for d in kv_params["createMode"]["decorators"] if d["type"] == "allowed")
    assert allowed["argument"] == ["default", "recover"]
    assert kv_params["createMode"]["default"] == "default"

    main = model.parse(model.MAIN_BICEP)
    vault_module = main["modules"]["vault"]["config"]["params"]
    assert vault_module["createMode"] == "keyVaultCreateMode"
    assert "keyVaultToken" in str(vault_module["name"])
    token = str(model.variables(model.MAIN_BICEP)["keyVaultToken"])
    assert "keyVaultNameSalt" in token and "resourceToken" in token
    mapped = _parameters_json()
    assert mapped["keyVaultNameSalt"] == "${KEY_VAULT_NAME_SALT}"
    assert mapped["keyVaultCreateMode"] == "${KEY_VAULT_CREATE_MODE=default}"


def test_principal_type_comes_from_the_environment_and_is_not_forced_to_user() -> None:
    assert _parameters_json()["principalType"] == "${AZURE_PRINCIPAL_TYPE}"
    resources = model.parse(model.INFRA_DIR / "app" / "rbac.bicep")["resources"]
    for name in ("developerStorage", "developerVault"):
        principal_type = resources[name]["config"]["config"]["properties"]["principalType"]
        conditional = principal_type["operator"]
        assert conditional["type"] == "conditional"
        assert conditional["operands"]["true_value"] is None, f"{name}: empty type must not be sent"
        assert conditional["operands"]["false_value"] == "developerPrincipalType"
    rbac_module = model.parse(model.MAIN_BICEP)["modules"]["rbac"]["config"]["params"]
    assert rbac_module["developerPrincipalType"] == "principalType"


# ----------------------------------------------------------------------------------------------------
# The instance cap
# ----------------------------------------------------------------------------------------------------


def test_instance_cap_is_sized_from_the_tenant_count_with_host_json_concurrency() -> None:
    host = json.loads((model.REPO_ROOT / "host.json").read_text(encoding="utf-8"))
    queues = host["extensions"]["queues"]
    variables = model.variables(model.MAIN_BICEP)
    assert variables["messagesPerInstance"] == queues["batchSize"] + queues["newBatchThreshold"]
    derived = json.dumps(variables["derivedInstanceCap"])
    assert "tenantCount" in derived and "messagesPerInstance" in derived
    api_module = model.parse(model.MAIN_BICEP)["modules"]["api"]["config"]["params"]
    assert api_module["maximumInstanceCount"] == "instanceCap"
    assert _parameters_json()["tenantCount"] == "${TENANT_COUNT=1}"


@pytest.mark.parametrize(
    "path",
    [model.INFRA_DIR / "app" / "api.bicep", model.INFRA_DIR / "README.md", model.README],
    ids=lambda p: str(p.relative_to(model.REPO_ROOT)),
)
def test_the_cap_is_documented_as_per_scale_group(path: Path) -> None:
    text = re.sub(r"\s+", " ", path.read_text(encoding="utf-8"))
    assert re.search(r"per-function scale group", text, re.IGNORECASE), path
