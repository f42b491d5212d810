// Storage for the Functions host and for the app's own queues, tables and containers.
// Shared-key access is off: every caller (host, app, Event Grid, operators) authenticates with Entra ID.

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Replication SKU. Standard_ZRS where the region offers it survives a zone outage; Standard_LRS is the cheapest.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param skuName string = 'Standard_LRS'

@description('Blob container that receives the Flex Consumption deployment package.')
param deploymentContainerName string

// ---------------------------------------------------------------------------------------------------------
// THE ONE PLACE for the names of the queues, tables and containers the app uses.
// shared/storage.py holds the same names; tests/infra/test_storage_names.py fails when the code uses a name
// that is missing here. Event Grid delivers BlobCreated events from discoveryLogsContainer to discoveryJobsQueue.
// ---------------------------------------------------------------------------------------------------------
var discoveryJobsQueue = 'mcas-discovery-jobs'
var discoveryLogsContainer = 'mcas-discovery-logs'

var queueNames = [
  discoveryJobsQueue
  'mcas-alert-pull-jobs'
  'mcas-alert-tenant-pulls'
  'mcas-jobs'
  'mcas-alerts'
]

var tableNames = [
  'mcasCheckpoints'
  'mcasRateLimit'
  'mcasUploads'
  'mcasDeadLetters'
  'mcasJobs'
  'mcasHealth'
  'mcasTenants'
  'mcasFanout'
]

var containerNames = [
  discoveryLogsContainer
  'mcas-alerts'
  'mcas-alert-payloads'
  'mcas-deadletters'
  'mcas-job-results'
]
// ---------------------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  //checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration reaches storage over its public endpoint; shared keys are disabled, so every request needs an Entra ID token and an RBAC role.
  //checkov:skip=CKV_AZURE_59:Public network access is required for the same reason as CKV_AZURE_35; anonymous blob access and shared keys are both disabled.
  //checkov:skip=CKV_AZURE_206:Replication is the skuName parameter (storageSkuName); the default LRS deploys in every Flex Consumption region, ZRS is not offered in all of them. Choose Standard_ZRS where available.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = [for containerName in containerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-01-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

// The Functions host moves a message to <queue>-poison after maxDequeueCount failures. Creating them here lets
// the dead-letter functions that listen on them start before the first failure.
resource poisonQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' = [for queueName in queueNames: {
  parent: queueService
  name: '${queueName}-poison'
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2025-01-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-01-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
// Read from the created resources so that modules using these names wait for them to exist.
output discoveryLogsContainerName string = containers[0].name
output discoveryJobsQueueName string = queues[0].name
output queueNames array = queueNames
output tableNames array = tableNames
output containerNames array = containerNames
