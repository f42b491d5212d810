// The function app on a Flex Consumption (FC1) plan, running as the user-assigned identity.
// Python 3.11: the app pins azure-functions 1.26 (2.x needs Python 3.13, which Flex does not offer for this app).
// Flex Consumption deprecates many classic site properties and app settings (FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION, WEBSITE_*, siteConfig.ftpsState, ...): the runtime lives in functionAppConfig and
// the package in the deployment container. The list, and why each one is gone:
// https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations
// tests/infra/test_flex_consumption.py fails on any of them.

@description('Function app name (globally unique host name).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region (one that offers Flex Consumption).')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('azd service name (azure.yaml) that azd deploys to this app.')
param serviceName string = 'api'

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Blob endpoint of that account.')
param blobEndpoint string

@description('Queue endpoint of that account.')
param queueEndpoint string

@description('Table endpoint of that account.')
param tableEndpoint string

@description('Container holding the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string (not a secret once local auth is disabled).')
param applicationInsightsConnectionString string

@description('The app\'s own settings (MCAS_*); merged under the platform settings below. No secret values.')
param appSettings object

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Instance cap of EACH per-function scale group, not of the app: Flex Consumption scales the HTTP functions as one group and every queue or timer function on its own set of instances, each up to this cap. main.bicep sizes it from the tenant count.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 10

// Identity-based host storage, Entra-authenticated telemetry and the identity the SDKs should use
// (DefaultAzureCredential reads AZURE_CLIENT_ID to pick the user-assigned identity).
var platformAppSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  AZURE_CLIENT_ID: identityClientId
}

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  //checkov:skip=CKV_AZURE_225:Flex Consumption scales per execution with no fixed instances to spread over zones; zone redundancy for FC1 is regional and optional.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-11-01' = {
  //checkov:skip=CKV_AZURE_16:Callers authenticate in code (function key plus a Standard Webhooks signature or an Entra ID token validated by the app); App Service Authentication would reject signed webhook calls.
  //checkov:skip=CKV_AZURE_17:SOAR callers authenticate with function keys and signatures or Entra ID tokens; mutual TLS is not required.
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales to zero by design; there is no minimum instance count.
  //checkov:skip=CKV_AZURE_213:Flex Consumption does not support the App Service health check; the app serves GET /api/ping for external probes.
  //checkov:skip=CKV_AZURE_222:SOAR platforms call the webhook intake over the internet; inbound calls are authenticated by the app.
  //checkov:skip=CKV_AZURE_78:Flex Consumption has no FTP or FTPS endpoint and refuses siteConfig.ftpsState (error 51021, listed under Flex Consumption plan deprecations); deployment uses the blob container with an Entra ID token and SCM basic auth is off below.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      // Only what Flex Consumption accepts: no ftpsState, alwaysOn, linuxFxVersion or functionAppScaleLimit.
      minTlsVersion: '1.2'
      http20Enabled: true
      // Platform settings win over the app's settings if a key appears in both.
      appSettings: [for setting in items(union(appSettings, platformAppSettings)): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No basic-auth publishing: azd deploys with an Entra ID token. Flex Consumption offers no FTP endpoint at all
// (FTPS is listed as not supported), so only the SCM basic-auth policy applies; an `ftp` policy is not declared.
resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
