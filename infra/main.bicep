// Deploys the Defender for Cloud Apps automation app with `azd up`: a resource group holding a Flex Consumption
// function app, its user-assigned identity, storage (shared keys off), Key Vault (RBAC), Event Grid for discovery
// logs, Log Analytics and Application Insights, and the role assignments between them.
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

@description('Principal type of principalId: User, Group or ServicePrincipal (a CI pipeline). Empty means User.')
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

@description('Storage replication SKU.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Upper bound on function app instances (Flex Consumption).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 10

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

@description('MCAS_ALERTS_SCHEDULE: NCRONTAB schedule of the alert pull (six fields, UTC). The timer binding reads it as %MCAS_ALERTS_SCHEDULE%, so the app setting is never left empty. Empty: every 5 minutes.')
param mcasAlertsSchedule string = ''

@description('MCAS_ALERT_SINKS: comma list of queue, blob, webhook. Empty: queue. The pull never advances its checkpoint without a sink, so it is never left empty.')
param mcasAlertSinks string = ''

@description('MCAS_ALERT_WEBHOOK_URL: HTTPS URL the webhook sink posts signed alert batches to. Required when MCAS_ALERT_SINKS includes webhook.')
param mcasAlertWebhookUrl string = ''

@description('MCAS_FIRST_FETCH_LOOKBACK: how far back a tenant\'s first pull starts, e.g. 24h or 7d. Empty: 24h.')
param mcasFirstFetchLookback string = ''

@description('MCAS_WEBHOOK_AUDIENCE: comma list of audiences (application id URI or client id) accepted in Entra ID bearer tokens on the job intake API. Empty: bearer tokens are not accepted.')
param mcasWebhookAudience string = ''

// ---------------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------------

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2022-09-01' = {
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
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    publicNetworkAccess: keyVaultPublicNetworkAccess
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

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: vault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    identityPrincipalId: identity.outputs.principalId
    developerPrincipalId: principalId
    developerPrincipalType: empty(principalType) ? 'User' : principalType
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
  MCAS_ALERTS_SCHEDULE: empty(mcasAlertsSchedule) ? '0 */5 * * * *' : mcasAlertsSchedule
  MCAS_ALERT_SINKS: empty(mcasAlertSinks) ? 'queue' : mcasAlertSinks
  MCAS_ALERT_WEBHOOK_URL: mcasAlertWebhookUrl
  MCAS_FIRST_FETCH_LOOKBACK: mcasFirstFetchLookback
  // Event Grid watches this container (app/discovery-events.bicep), so the app must read the same one.
  MCAS_DISCOVERY_CONTAINER: storage.outputs.discoveryLogsContainerName
  MCAS_WEBHOOK_AUDIENCE: mcasWebhookAudience
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
    maximumInstanceCount: maximumInstanceCount
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
