// Every role assignment of the deployment, in one place. The app's identity gets only the data roles it uses;
// an optional developer principal gets what the deployment steps in infra/README.md need (putting secrets into
// the vault, dropping logs into the discovery container, running the app locally against these resources).
// Assignment names are guid(scope, principal, role) so a redeploy is idempotent.

@description('Storage account the app uses.')
param storageAccountName string

@description('Key Vault holding the Defender for Cloud Apps credentials.')
param keyVaultName string

@description('Application Insights component the app reports to.')
param applicationInsightsName string

@description('Data collection rule the app sends alerts through (logs-ingestion.bicep); empty when that sink is not deployed.')
param dataCollectionRuleName string = ''

@description('Principal (object) id of the app\'s user-assigned managed identity.')
param identityPrincipalId string

@description('Object id of a developer or operator to grant data access for setup and local runs; empty for none.')
param developerPrincipalId string = ''

@description('Principal type of developerPrincipalId. Empty: not sent, so Azure resolves the type itself (works for a user, a group or a CI service principal).')
@allowed([
  ''
  'User'
  'Group'
  'ServicePrincipal'
])
param developerPrincipalType string = ''

// Built-in role definition ids.
var roles = {
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User: read secret values (certificates are read through their backing secret)
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer: developer sets secrets
  keyVaultCertificatesOfficer: 'a4417e6f-fecd-4de8-b567-7b0420556985' // Key Vault Certificates Officer: developer imports the certificate
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner: host state, deployment package, app containers
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor: developer uploads discovery logs
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor: queue triggers and outputs
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor: checkpoints, rate limit, uploads, jobs, health
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher: Entra-authenticated telemetry, and Logs Ingestion API calls on a data collection rule
}

var identityStorageRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

var developerStorageRoles = [
  roles.storageBlobDataContributor
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

var developerVaultRoles = [
  roles.keyVaultSecretsOfficer
  roles.keyVaultCertificatesOfficer
]

var withDeveloper = !empty(developerPrincipalId)
var withLogsIngestion = !empty(dataCollectionRuleName)

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource dataCollectionRule 'Microsoft.Insights/dataCollectionRules@2024-03-11' existing = if (withLogsIngestion) {
  name: dataCollectionRuleName
}

resource identityStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in identityStorageRoles: {
  name: guid(storage.id, identityPrincipalId, roleId)
  scope: storage
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

resource identityVault 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identityPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

resource identityTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, identityPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// The logs sink posts alerts through this one rule and nowhere else (role assignments can take up to 30 minutes
// to reach the ingestion endpoint; until then it answers 403 and the page is retried).
resource identityLogsIngestion 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withLogsIngestion) {
  name: guid(dataCollectionRule.id, identityPrincipalId, roles.monitoringMetricsPublisher)
  scope: dataCollectionRule
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource developerStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in developerStorageRoles: if (withDeveloper) {
  name: guid(storage.id, developerPrincipalId, roleId)
  scope: storage
  properties: {
    principalId: developerPrincipalId
    principalType: empty(developerPrincipalType) ? null : developerPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

resource developerVault 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in developerVaultRoles: if (withDeveloper) {
  name: guid(vault.id, developerPrincipalId, roleId)
  scope: vault
  properties: {
    principalId: developerPrincipalId
    principalType: empty(developerPrincipalType) ? null : developerPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]
