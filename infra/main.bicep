// Deploys the Defender for Cloud Apps automation app with `azd up`: a resource group holding a Flex Consumption
// function app, its user-assigned identity, storage (shared keys off), Key Vault (RBAC), Event Grid for discovery
// logs, Log Analytics and Application Insights, the alerts table with its data collection rule and workbook, and the
// role assignments between them.
// Parameters are documented in infra/README.md; azd fills them from main.parameters.json.
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------------------------
// azd environment
// ---------------------------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the unique suffix of every resource name.')
param environmentName string

@minLength(1)
@description('Azure region for every resource. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user (azd sets it). Gets Key Vault secret/certificate officer and storage data roles for setup and local runs. Empty for none.')
param principalId string = ''

@description('Principal type of principalId: User, Group or ServicePrincipal (a CI pipeline signed in as a service principal). Empty: not sent with the role assignments, so Azure resolves the type itself.')
@allowed([
  ''
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = ''

// ---------------------------------------------------------------------------------------------------------------
// Infrastructure options
// ---------------------------------------------------------------------------------------------------------------

@description('Public network access to the Key Vault. Keep Enabled unless you add VNet integration and a private endpoint: the app reaches the vault over its public endpoint (Entra ID + RBAC still required).')
@allowed([
  'Enabled'
  'Disabled'
])
param keyVaultPublicNetworkAccess string = 'Enabled'

@description('Key Vault name salt. Empty: the vault is named from the environment like every resource. After `azd down` that name stays reserved for 90 days (soft delete with purge protection): set any new value to deploy a new, empty vault instead, or see keyVaultCreateMode.')
param keyVaultNameSalt string = ''

@description('default, or recover: bring back the soft-deleted vault of this environment with its secrets after `azd down` (then set it back to default).')
@allowed([
  'default'
  'recover'
])
param keyVaultCreateMode string = 'default'

@description('Storage replication SKU.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Number of Defender for Cloud Apps tenants this deployment is sized for; sets the instance cap below.')
@minValue(1)
@maxValue(12000)
param tenantCount int = 1

@description('Instance cap of each per-function scale group (Flex Consumption scales the HTTP functions as one group and every queue or timer function on its own instances, each group up to this cap). 0: derived from tenantCount.')
@minValue(0)
@maxValue(1000)
param maximumInstanceCount int = 0

@description('Memory per function app instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// ---------------------------------------------------------------------------------------------------------------
// App settings (MCAS_*). Values only, never secrets: secrets live in the Key Vault and the app reads them with its
// managed identity. An empty value means "use the app's documented default".
// ---------------------------------------------------------------------------------------------------------------

@minLength(1)
@description('MCAS_API_URL: your tenant\'s API URL, e.g. https://contoso.us2.portal.cloudappsecurity.com (Defender portal > Settings > Cloud Apps > System > About).')
param mcasApiUrl string

@description('MCAS_TENANT_ID: Entra tenant id of the Defender for Cloud Apps tenant. Empty: the tenant of this deployment.')
param mcasTenantId string = ''

@description('MCAS_CLIENT_ID: application (client) id of the app registration holding the API permissions. Required for application and user auth modes.')
param mcasClientId string = ''

@description('MCAS_AUTH_MODE: application (default), user or legacy. Empty: application.')
@allowed([
  ''
  'application'
  'user'
  'legacy'
])
param mcasAuthMode string = ''

@description('MCAS_AUTHORITY_HOST: Entra authority. Empty: https://login.microsoftonline.com (commercial and GCC); https://login.microsoftonline.us for GCC High and DoD.')
param mcasAuthorityHost string = ''

@description('MCAS_CLIENT_SECRET_NAME: Key Vault secret holding the client secret. Empty: mcas-client-secret.')
param mcasClientSecretName string = ''

@description('MCAS_CLIENT_CERTIFICATE_NAME: Key Vault certificate to authenticate with instead of the secret. Empty: no certificate.')
param mcasClientCertificateName string = ''

@description('MCAS_LEGACY_TOKEN_NAME: Key Vault secret holding a legacy API token (legacy auth mode only). Empty: mcas-api-token.')
param mcasLegacyTokenName string = ''

@description('MCAS_RATE_LIMIT_PER_MINUTE: tenant-wide request budget per minute shared by all instances. Empty: 30.')
param mcasRateLimitPerMinute string = ''

@description('MCAS_TENANT_NAME: label of the tenant profile in checkpoints, logs and health records. Empty: default.')
param mcasTenantName string = ''

@description('MCAS_TENANT_PROFILES: JSON list of tenant profiles for several tenants (MSSP); no secrets, only Key Vault secret names. Empty: one tenant from the flat settings.')
param mcasTenantProfiles string = ''

@description('MCAS_CLIENT_CREDENTIAL_MODE: how the app proves its identity to Entra ID: auto (certificate if MCAS_CLIENT_CERTIFICATE_NAME is set, else the secret), secret, certificate or managed_identity (federated credential, no secret). Empty: auto.')
@allowed([
  ''
  'auto'
  'secret'
  'certificate'
  'managed_identity'
])
param mcasClientCredentialMode string = ''

@description('MCAS_ALERTS_SCHEDULE: NCRONTAB schedule of the alert pull (six fields, UTC). The timer binding reads it as %MCAS_ALERTS_SCHEDULE%, so the app setting is never left empty. Empty: every minute (each tenant is probed once a slot; see the fan-out).')
param mcasAlertsSchedule string = ''

@description('MCAS_ALERT_SINKS: comma list of queue, blob, webhook, logs. Empty: queue, plus logs when logsIngestionEnabled. The pull never advances its checkpoint without a sink, so it is never left empty.')
param mcasAlertSinks string = ''

@description('MCAS_ALERT_WEBHOOK_URL: HTTPS URL the webhook sink posts signed alert batches to. Required when MCAS_ALERT_SINKS includes webhook.')
param mcasAlertWebhookUrl string = ''

@description('MCAS_FIRST_FETCH_LOOKBACK: how far back a tenant\'s first pull starts, e.g. 24h or 7d. Empty: 24h.')
param mcasFirstFetchLookback string = ''

@description('MCAS_WEBHOOK_AUDIENCE: comma list of audiences (application id URI or client id) accepted in Entra ID bearer tokens on the job intake API. Empty: bearer tokens are not accepted.')
param mcasWebhookAudience string = ''

@description('Deploy the MDAAlerts_CL table, its data collection rule and the workbook, and send alerts there (the logs sink). Onboard Microsoft Sentinel on the workspace to use the table from Sentinel.')
param logsIngestionEnabled bool = true

// ---------------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------------

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
var keyVaultToken = empty(keyVaultNameSalt) ? resourceToken : toLower(uniqueString(subscription().id, environmentName, location, keyVaultNameSalt))

// A queue-triggered function instance runs up to batchSize + newBatchThreshold messages at once (host.json: 8 + 4).
// With alert pulls queued as one message per tenant, a scale group needs one instance per 12 tenants to pull them
// all in the same cycle. Never below 10 (discovery uploads scale in their own group) nor above Flex's 1000.
var messagesPerInstance = 12
var derivedInstanceCap = min(1000, max(10, (tenantCount + messagesPerInstance - 1) / messagesPerInstance))
var instanceCap = maximumInstanceCount == 0 ? derivedInstanceCap : maximumInstanceCount

resource rg 'Microsoft.Resources/resourceGroups@2025-04-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: 'app-package-${resourceToken}'
  }
}

module vault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${keyVaultToken}'
    location: location
    tags: tags
    publicNetworkAccess: keyVaultPublicNetworkAccess
    createMode: keyVaultCreateMode
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module discoveryEvents 'app/discovery-events.bicep' = {
  name: 'discovery-events'
  scope: rg
  params: {
    name: '${abbrs.eventGridSystemTopics}${resourceToken}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    containerName: storage.outputs.discoveryLogsContainerName
    queueName: storage.outputs.discoveryJobsQueueName
  }
}

module logsIngestion 'app/logs-ingestion.bicep' = if (logsIngestionEnabled) {
  name: 'logs-ingestion'
  scope: rg
  params: {
    workspaceName: monitoring.outputs.logAnalyticsName
    dataCollectionRuleName: '${abbrs.insightsDataCollectionRules}alerts-${resourceToken}'
    location: location
    tags: tags
  }
}

module workbook 'app/workbook.bicep' = if (logsIngestionEnabled) {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceId: monitoring.outputs.logAnalyticsId
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: vault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    identityPrincipalId: identity.outputs.principalId
    developerPrincipalId: principalId
    developerPrincipalType: principalType
    dataCollectionRuleName: logsIngestionEnabled ? logsIngestion.outputs.dataCollectionRuleName : ''
  }
}

// Every MCAS_* setting the app reads, in one object. tests/infra/test_settings_drift.py checks that each setting
// the code reads is set here or has a documented default.
var mcasAppSettings = {
  MCAS_API_URL: mcasApiUrl
  MCAS_TENANT_ID: empty(mcasTenantId) ? tenant().tenantId : mcasTenantId
  MCAS_CLIENT_ID: mcasClientId
  MCAS_AUTH_MODE: mcasAuthMode
  MCAS_AUTHORITY_HOST: mcasAuthorityHost
  MCAS_KEY_VAULT_URL: vault.outputs.uri
  MCAS_CLIENT_SECRET_NAME: mcasClientSecretName
  MCAS_CLIENT_CERTIFICATE_NAME: mcasClientCertificateName
  MCAS_LEGACY_TOKEN_NAME: mcasLegacyTokenName
  MCAS_RATE_LIMIT_PER_MINUTE: mcasRateLimitPerMinute
  MCAS_TENANT_NAME: mcasTenantName
  MCAS_TENANT_PROFILES: mcasTenantProfiles
  MCAS_CLIENT_CREDENTIAL_MODE: mcasClientCredentialMode
  MCAS_ALLOW_LOOPBACK: 'false'
  MCAS_ALERTS_SCHEDULE: empty(mcasAlertsSchedule) ? '0 * * * * *' : mcasAlertsSchedule
  MCAS_ALERT_SINKS: !empty(mcasAlertSinks) ? mcasAlertSinks : (logsIngestionEnabled ? 'queue,logs' : 'queue')
  MCAS_ALERT_WEBHOOK_URL: mcasAlertWebhookUrl
  MCAS_FIRST_FETCH_LOOKBACK: mcasFirstFetchLookback
  // Event Grid watches this container (app/discovery-events.bicep), so the app must read the same one.
  MCAS_DISCOVERY_CONTAINER: storage.outputs.discoveryLogsContainerName
  MCAS_WEBHOOK_AUDIENCE: mcasWebhookAudience
  // The logs sink's destination, read from the rule this deployment creates (never composed by hand).
  MCAS_LOGS_INGESTION_ENDPOINT: logsIngestionEnabled ? logsIngestion.outputs.logsIngestionEndpoint : ''
  MCAS_LOGS_DCR_IMMUTABLE_ID: logsIngestionEnabled ? logsIngestion.outputs.immutableId : ''
  MCAS_LOGS_STREAM: logsIngestionEnabled ? logsIngestion.outputs.streamName : ''
  // Monitoring Metrics Publisher on the rule goes to the app's managed identity (app/rbac.bicep): call as it.
  MCAS_LOGS_CREDENTIAL: 'managed_identity'
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  dependsOn: [
    rbac
  ]
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    appSettings: mcasAppSettings
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: instanceCap
  }
}

// azd writes these into the environment (.azure/<env>/.env); UPPER_SNAKE by azd convention.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = vault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output DISCOVERY_LOGS_CONTAINER string = storage.outputs.discoveryLogsContainerName
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.logAnalyticsId
output MCAS_LOGS_DCR_IMMUTABLE_ID string = logsIngestionEnabled ? logsIngestion.outputs.immutableId : ''
output MAXIMUM_INSTANCE_COUNT int = instanceCap
