// The app's user-assigned managed identity: the one identity the function app uses for storage, Key Vault,
// Application Insights and (optionally) as the federated credential of the Defender for Cloud Apps app registration.

@description('Identity name.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
