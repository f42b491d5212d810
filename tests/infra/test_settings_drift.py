"""No drift between the settings the app reads and the app settings infra/ deploys.

Every setting the deployed code (shared/, functions/, function_app.py) reads must be set by the Bicep app
settings or have a documented default: a key of `DEFAULTS` in shared/settings.py, or a README settings-table
row (| `NAME` | default | meaning |) whose default cell is not blank, a dash or "required". Settings the
Functions host resolves itself - `%NAME%` binding expressions and `connection=` prefixes - must be set by
Bicep, because a default in Python code cannot help the host. When this fails after you add a setting: add it
to `mcasAppSettings` in infra/main.bicep (with a parameter, a main.parameters.json entry and a row in
infra/README.md) or document its default in the README settings table.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from tests.infra import bicep_model as model

# Read by the code but not app settings of ours: the platform sets them, or they only matter off Azure.
NOT_APP_SETTINGS: dict[str, str] = {
    "IDENTITY_ENDPOINT": "set by the platform for managed identity",
    "IDENTITY_HEADER": "set by the platform for managed identity",
    "MSI_ENDPOINT": "set by the platform for managed identity (older protocol)",
    "MSI_SECRET": "set by the platform for managed identity (older protocol)",
    "AZURE_FUNCTIONS_ENVIRONMENT": "set by the Functions host",
    "CONTAINER_NAME": "set by the Functions host",
    "REQUESTS_CA_BUNDLE": "trust-store override honoured as requests does; unset in Azure (system trust)",
    "CURL_CA_BUNDLE": "trust-store override honoured as requests does; unset in Azure (system trust)",
    "SSL_CERT_FILE": "trust-store override; unset in Azure (system trust)",
    "XDG_CONFIG_HOME": "operator's config directory for the mcasctl login token cache; not used in Azure",
}
PLATFORM_PREFIXES = ("WEBSITE_", "FUNCTIONS_", "APPSETTING_")


def _not_an_app_setting(name: str) -> bool:
    return name in NOT_APP_SETTINGS or name.startswith(PLATFORM_PREFIXES)


def _reads_by_name(reads: list[model.CodeRead]) -> dict[str, list[model.CodeRead]]:
    grouped: dict[str, list[model.CodeRead]] = defaultdict(list)
    for read in reads:
        grouped[read.name].append(read)
    return grouped


def _set_by_bicep(name: str, bicep: set[str]) -> bool:
    return name in bicep


def _connection_set_by_bicep(prefix: str, bicep: set[str]) -> bool:
    """`connection="X"` resolves X itself or the identity-based X__* family."""
    return prefix in bicep or any(key.startswith(f"{prefix}__") for key in bicep)


def test_scanner_sees_the_core_settings() -> None:
    """Guards the scanner itself: if it stopped finding reads, the drift test would pass vacuously."""
    names = {read.name for read in model.code_reads()}
    assert {"MCAS_API_URL", "MCAS_KEY_VAULT_URL", "MCAS_AUTH_MODE"} <= names


def test_every_setting_is_set_by_bicep_or_has_a_documented_default() -> None:
    bicep = set(model.app_settings())
    documented = {read.name for read in model.defaults_in_code()} | set(model.readme_defaults())
    missing: dict[str, list[model.CodeRead]] = {}
    for name, reads in sorted(_reads_by_name(model.code_reads()).items()):
        if any(read.how == "connection" for read in reads):
            continue  # checked by the next test
        if _not_an_app_setting(name) or _set_by_bicep(name, bicep) or name in documented:
            continue
        missing[name] = reads
    report = "\n".join(
        f"  {name}  (read at {', '.join(list(dict.fromkeys(r.where() for r in reads))[:3])})"
        for name, reads in missing.items()
    )
    assert not missing, (
        "settings read by the app with neither a Bicep app setting nor a documented default:\n"
        f"{report}\n"
        "Add each to mcasAppSettings in infra/main.bicep (parameter, main.parameters.json, infra/README.md), "
        "or document its default in the README settings table (| `NAME` | default | meaning |)."
    )


def test_binding_expressions_and_connections_are_set_by_bicep() -> None:
    """The host resolves %NAME% and connection prefixes from app settings; Python defaults cannot help."""
    bicep = set(model.app_settings())
    unresolved = [
        read
        for read in model.code_reads()
        if (read.how == "binding" and not _set_by_bicep(read.name, bicep))
        or (read.how == "connection" and not _connection_set_by_bicep(read.name, bicep))
    ]
    assert not unresolved, "host-resolved settings missing from the Bicep app settings: " + ", ".join(
        f"{r.name} ({r.how} at {r.where()})" for r in unresolved
    )


def test_bicep_sets_only_settings_the_app_reads() -> None:
    """A renamed or removed setting must not linger in the deployment."""
    read = {r.name for r in model.code_reads()}
    stale = sorted(name for name in model.app_settings() if name.startswith("MCAS_") and name not in read)
    assert not stale, f"Bicep sets MCAS_* settings the app no longer reads: {stale}"


def test_app_settings_objects_reach_the_function_app() -> None:
    assert model.app_settings_wiring_problems() == []


def test_platform_settings_are_identity_based() -> None:
    settings = model.app_settings()
    assert settings["AzureWebJobsStorage__credential"].value == "managedidentity"
    for key in ("clientId", "blobServiceUri", "queueServiceUri", "tableServiceUri"):
        assert f"AzureWebJobsStorage__{key}" in settings
    assert "AzureWebJobsStorage" not in settings, "no connection string: shared keys are disabled"
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in settings
    assert "AZURE_CLIENT_ID" in settings
    # Flex Consumption rejects these: the runtime is declared in functionAppConfig.
    for rejected in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"):
        assert rejected not in settings


@pytest.mark.parametrize("suffix", ["_SECRET", "_PASSWORD", "_TOKEN", "_KEY", "_CONNECTION_STRING_SECRET"])
def test_no_app_setting_carries_a_secret_value(suffix: str) -> None:
    """Secrets live in Key Vault; app settings hold only their names (..._NAME) and public values."""
    offending = [name for name in model.app_settings() if name.upper().endswith(suffix)]
    assert not offending


def test_no_bicep_file_reads_account_keys_or_takes_secure_parameters() -> None:
    for path in model.bicep_files():
        text = path.read_text(encoding="utf-8")
        assert "listKeys(" not in text and "AccountKey=" not in text, path
        assert "@secure()" not in text, (
            f"{path}: the deployment takes no secrets; put them in Key Vault instead"
        )


def test_empty_parameters_mean_the_app_defaults() -> None:
    """main.bicep promises that an empty MCAS_* parameter means the app's default: the deployed settings with
    every optional parameter left empty must load through every settings reader without an error."""
    from shared.alerts.config import AlertConfig
    from shared.auth.config import AuthConfig
    from shared.discovery.config import DiscoveryConfig
    from shared.jobs.config import JobsConfig
    from shared.settings import Settings

    deployed = {
        "MCAS_API_URL": "https://contoso.us2.portal.cloudappsecurity.com",
        "MCAS_TENANT_ID": "00000000-0000-0000-0000-000000000001",
        "MCAS_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
        "MCAS_KEY_VAULT_URL": "https://kv-example.vault.azure.net/",
        "MCAS_DISCOVERY_CONTAINER": model.storage_layout().discovery_logs_container,
        "MCAS_ALERTS_SCHEDULE": "0 */5 * * * *",
    }
    env: dict[str, str] = {}
    for name, setting in model.app_settings().items():
        if not name.startswith("MCAS_"):
            continue
        literal = isinstance(setting.value, str) and not model.is_reference(setting.value)
        env[name] = deployed.get(name, setting.value if literal else "")
    settings = Settings.from_env(env)
    assert settings.default_tenant.auth_mode == "application"
    AlertConfig.from_settings(settings)
    AuthConfig.from_settings(settings)
    DiscoveryConfig.from_getter(settings.get)
    JobsConfig.from_settings(settings)


# ----------------------------------------------------------------------------------------------------
# The scanner on small synthetic sources, so a change in its rules shows up here rather than as a silent pass.
# ----------------------------------------------------------------------------------------------------


def _scan(tmp_path: Path, source: str) -> dict[str, set[str]]:
    path = tmp_path / "sample.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    found: dict[str, set[str]] = defaultdict(set)
    for read in model.code_reads([path]):
        if read.how != "defaults":
            found[read.name].add(read.how)
    return dict(found)


def test_scanner_patterns(tmp_path: Path) -> None:
    found = _scan(
        tmp_path,
        '''
        """Module prose mentioning MCAS_IN_A_DOCSTRING is not a read."""
        import os

        NAME = "MCAS_VIA_CONSTANT"

        def f(settings, env, get):
            os.environ.get("OTHER_SETTING")
            os.getenv("AZURE_CLIENT_ID")
            os.environ["SUBSCRIPTED_SETTING"]
            env.get("MCAS_PLAIN_GET")
            settings.get("MCAS_SETTINGS_GET", "1")
            _number(settings, "MCAS_SECOND_ARGUMENT", "5")
            payload.get("not_a_setting")
            payload.get("id")

        @app.timer_trigger(schedule="%MCAS_SCHEDULE%", arg_name="timer")
        @app.queue_trigger(arg_name="msg", queue_name="%MCAS_QUEUE%", connection="AzureWebJobsStorage")
        def g(timer, msg):
            pass
        ''',
    )
    assert found["OTHER_SETTING"] == {"call"}
    assert found["AZURE_CLIENT_ID"] == {"call"}
    assert found["SUBSCRIPTED_SETTING"] == {"subscript"}
    assert "literal" in found["MCAS_PLAIN_GET"]
    assert "literal" in found["MCAS_SETTINGS_GET"]
    assert found["MCAS_SECOND_ARGUMENT"] == {"literal"}
    assert found["MCAS_VIA_CONSTANT"] == {"literal"}
    assert found["MCAS_SCHEDULE"] == {"binding"}
    assert found["MCAS_QUEUE"] == {"binding"}
    assert found["AzureWebJobsStorage"] == {"connection"}
    assert "MCAS_IN_A_DOCSTRING" not in found
    assert "not_a_setting" not in found and "id" not in found


def test_readme_default_cells(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        textwrap.dedent(
            """
            | Setting | Default | Meaning |
            |---|---|---|
            | `MCAS_A` | `30` | a number |
            | `MCAS_B` | — (required) | required |
            | `MCAS_C` | (unset) | optional, off when unset |
            | `MCAS_D` | — | no default given |
            | `MCAS_E` |  | blank |
            | MCAS_F | `x` | without backticks |
            """
        ),
        encoding="utf-8",
    )
    assert model.readme_defaults(readme) == {"MCAS_A": "`30`", "MCAS_C": "(unset)", "MCAS_F": "`x`"}
