// Destination of the `logs` alert sink: the custom table MDAAlerts_CL in the deployment's Log Analytics workspace
// (onboard Microsoft Sentinel on that workspace to use it there) and a `kind: Direct` data collection rule, which
// has its own logs ingestion endpoint, so no data collection endpoint is needed.
// The app POSTs JSON arrays to {endpoint}/dataCollectionRules/{immutableId}/streams/{stream} with its managed
// identity (Monitoring Metrics Publisher on this rule, granted in rbac.bicep).
// Logs Ingestion API: https://learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview
// DCR structure: https://learn.microsoft.com/azure/azure-monitor/data-collection/data-collection-rule-structure

@description('Log Analytics workspace that receives the table (created by monitoring.bicep).')
param workspaceName string

@description('Data collection rule name.')
param dataCollectionRuleName string

@description('Azure region: the workspace\'s (a DCR must be in the same region as its destination workspace).')
param location string

@description('Tags applied to every resource.')
param tags object = {}

// Custom tables end in _CL; the stream the app posts to is declared with the Custom- prefix.
var tableName = 'MDAAlerts_CL'
var streamName = 'Custom-${tableName}'

// ---------------------------------------------------------------------------------------------------------
// THE TABLE SCHEMA, mirrored from shared/alerts/logs_table.json (the sink builds its rows from that file;
// tests/infra/test_logs_ingestion.py fails when the two differ). Flat, typed columns; names avoid the reserved
// id, Title and TenantId. Changing a column means changing the table and this rule together.
// ---------------------------------------------------------------------------------------------------------
var columns = [
  {
    name: 'TimeGenerated'
    type: 'datetime'
  }
  {
    name: 'AlertId'
    type: 'string'
  }
  {
    name: 'AlertVersion'
    type: 'long'
  }
  {
    name: 'Source'
    type: 'string'
  }
  {
    name: 'MdaTenant'
    type: 'string'
  }
  {
    name: 'AlertTitle'
    type: 'string'
  }
  {
    name: 'Severity'
    type: 'string'
  }
  {
    name: 'Status'
    type: 'string'
  }
  {
    name: 'Classification'
    type: 'string'
  }
  {
    name: 'Determination'
    type: 'string'
  }
  {
    name: 'AssignedTo'
    type: 'string'
  }
  {
    name: 'Created'
    type: 'datetime'
  }
  {
    name: 'Updated'
    type: 'datetime'
  }
  {
    name: 'PortalUrl'
    type: 'string'
  }
  {
    name: 'ServiceSource'
    type: 'string'
  }
  {
    name: 'MdaAlertId'
    type: 'string'
  }
  {
    name: 'Entities'
    type: 'dynamic'
  }
  {
    name: 'RawRecord'
    type: 'dynamic'
  }
  {
    name: 'SchemaVersion'
    type: 'int'
  }
]
// ---------------------------------------------------------------------------------------------------------

// Runs once per record: keep the sender's TimeGenerated (the alert's last update), and stamp the ingestion time
// on a record that arrives without one. Transformations allow only some functions (iif, isnull and now are;
// coalesce is not): https://learn.microsoft.com/azure/azure-monitor/data-collection/data-collection-transformations-kql
var transformKql = 'source | extend TimeGenerated = iif(isnull(TimeGenerated), now(), TimeGenerated)'

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' existing = {
  name: workspaceName
}

// The table must exist before a rule can send to it.
resource table 'Microsoft.OperationalInsights/workspaces/tables@2025-07-01' = {
  parent: workspace
  name: tableName
  properties: {
    plan: 'Analytics'
    schema: {
      name: tableName
      description: 'Defender for Cloud Apps alerts, one row per alert version (state changes are new rows), written by the mcas-functions logs sink.'
      columns: columns
    }
  }
}

resource rule 'Microsoft.Insights/dataCollectionRules@2024-03-11' = {
  name: dataCollectionRuleName
  location: location
  tags: tags
  kind: 'Direct'
  dependsOn: [
    table
  ]
  properties: {
    description: 'Defender for Cloud Apps alerts from the mcas-functions app into ${tableName}.'
    streamDeclarations: {
      '${streamName}': {
        columns: columns
      }
    }
    destinations: {
      logAnalytics: [
        {
          name: 'alertsWorkspace'
          workspaceResourceId: workspace.id
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          streamName
        ]
        destinations: [
          'alertsWorkspace'
        ]
        transformKql: transformKql
        outputStream: streamName
      }
    ]
  }
}

output dataCollectionRuleName string = rule.name
output immutableId string = rule.properties.immutableId
// Only kind: Direct rules created after 2024-03-31 carry this endpoint.
output logsIngestionEndpoint string = rule.properties.endpoints.logsIngestion
output streamName string = streamName
output tableName string = table.name
output workspaceId string = workspace.id
