// Event Grid: a BlobCreated event for every log dropped into the discovery container becomes one message on the
// discovery queue, which the discovery function consumes. Event Grid writes with its own system-assigned identity
// (shared keys are disabled on the account), which may only send messages to that one queue.
// Event Grid base64-encodes the event JSON (EventGridSchema, one event per message), matching host.json's
// queues.messageEncoding=base64.

@description('System topic name.')
param name string

@description('Azure region (the storage account\'s).')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Storage account that raises the events and holds the queue.')
param storageAccountName string

@description('Container whose new blobs are discovery logs to upload.')
param containerName string

@description('Queue that receives one message per new blob.')
param queueName string

// Storage Queue Data Message Sender: add messages, nothing else.
var queueMessageSenderRoleId = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource queue 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' existing = {
  name: '${storageAccountName}/default/${queueName}'
}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource topicSendsToQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, topic.id, queueMessageSenderRoleId)
  scope: queue
  properties: {
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueMessageSenderRoleId)
  }
}

resource blobCreatedToQueue 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: 'discovery-logs-to-queue'
  dependsOn: [
    topicSendsToQueue
  ]
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${containerName}/blobs/'
      enableAdvancedFilteringOnArrays: true
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'StorageQueue'
        properties: {
          resourceId: storage.id
          queueName: queueName
          queueMessageTimeToLiveInSeconds: 604800
        }
      }
    }
  }
}

output topicName string = topic.name
output subscriptionName string = blobCreatedToQueue.name
