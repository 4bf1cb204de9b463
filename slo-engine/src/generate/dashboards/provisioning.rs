//! Grafana's file provisioning: the dashboard provider and a Prometheus datasource.

/// The dashboard provider for Grafana's file provisioning.
pub const PROVIDER_YAML: &str = "\
# Grafana file provisioning: the cellwatch dashboards, in a cellwatch folder.
# Copy to /etc/grafana/provisioning/dashboards/ and the JSON files to the path below.
apiVersion: 1
providers:
  - name: cellwatch
    orgId: 1
    folder: cellwatch
    type: file
    disableDeletion: false
    allowUiUpdates: true
    updateIntervalSeconds: 30
    options:
      path: /var/lib/grafana/dashboards/cellwatch
      foldersFromFilesStructure: false
";

/// A Prometheus datasource with the stable uid the dashboards' variable defaults to.
pub const DATASOURCE_YAML: &str = "\
# Grafana file provisioning: a Prometheus datasource. Copy to
# /etc/grafana/provisioning/datasources/. The uid is stable so saved dashboards keep pointing
# at it; the dashboards also let you pick any Prometheus datasource.
apiVersion: 1
datasources:
  - name: Prometheus
    type: prometheus
    uid: prometheus
    access: proxy
    url: http://localhost:9090
    isDefault: true
    editable: true
    jsonData:
      timeInterval: 15s
";
