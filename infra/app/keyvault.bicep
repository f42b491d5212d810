// Key Vault in RBAC mode holding the Defender for Cloud Apps credentials (client secret, certificate, legacy
// token). Nothing here writes a secret: the operator puts them in after deployment (see infra/README.md).

@description('Vault name (3-24 characters, globally unique).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Enabled: reachable from the internet (still Entra ID + RBAC only). Disabled: only through private endpoints, which this template does not create, so the app cannot read it unless you add VNet integration.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('default: create (or update) the vault. recover: bring back the soft-deleted vault of this name, with every secret, certificate and version it held (after `azd down`); set it back to default once that deployment succeeded.')
@allowed([
  'default'
  'recover'
])
param createMode string = 'default'

@description('Days a deleted vault or secret stays recoverable (7-90). With purge protection it cannot be purged earlier.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  //checkov:skip=CKV_AZURE_109:A Flex Consumption app without VNet integration has no fixed outbound address to allow, so the firewall default stays Allow while publicNetworkAccess is Enabled; access still needs an Entra ID token and an RBAC role. Set keyVaultPublicNetworkAccess=Disabled (with private networking) to close it.
  //checkov:skip=CKV_AZURE_189:Public network access is a parameter (keyVaultPublicNetworkAccess, default Enabled) because the app without VNet integration can only reach the vault over its public endpoint.
  name: name
  location: location
  tags: tags
  properties: {
    createMode: createMode
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
    }
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
