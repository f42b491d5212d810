// The operations workbook (infra/workbooks/mcas-operations.workbook.json): alerts from the MDAAlerts_CL table and
// the app's metrics from Application Insights. The JSON names its two data sources with placeholders, filled in
// here, so the same file renders locally (docs/workbook/render.py) and deploys unchanged.
// Workbook resource: https://learn.microsoft.com/azure/templates/microsoft.insights/workbooks

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Name shown in the portal (Monitor > Workbooks, and the workspace\'s Workbooks blade).')
param displayName string = 'Defender for Cloud Apps automation'

@description('Log Analytics workspace holding MDAAlerts_CL (the workbook is listed under it).')
param workspaceId string

@description('Application Insights component the app reports its metrics to.')
param applicationInsightsId string

var template = loadTextContent('../workbooks/mcas-operations.workbook.json')
var serializedData = replace(replace(template, '__WORKSPACE_ID__', workspaceId), '__APP_INSIGHTS_ID__', applicationInsightsId)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; derived from the resource group so a redeploy updates the same one.
  name: guid(resourceGroup().id, 'mcas-operations-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: workspaceId
    serializedData: serializedData
  }
}

output id string = workbook.id
