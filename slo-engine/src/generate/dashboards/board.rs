//! A dashboard under construction: the grid layout, the panel kinds and their styles, the
//! dashboard's frame (time, annotations, links, variables).

use serde_json::{Value, json};

/// The datasource every panel and query variable reads: the `datasource` variable.
pub(super) const DS: &str = "${datasource}";

pub(super) fn ds() -> Value {
    json!({ "type": "prometheus", "uid": DS })
}

/// One query of a panel.
pub(super) struct Q {
    expr: String,
    legend: &'static str,
}

/// A query of one metric's series under the selector `s` (`{cell=~"$cell"}`-like, no braces).
pub(super) fn series(metric: &cellwatch_metrics::MetricDef, s: &str, legend: &'static str) -> Q {
    q(format!("{}{{{s}}}", metric.name), legend)
}

pub(super) fn q(expr: impl Into<String>, legend: &'static str) -> Q {
    Q {
        expr: expr.into(),
        legend,
    }
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Timeseries,
    Stacked,
    Stat,
    Table,
    StateTimeline,
}

/// A dashboard under construction: panels flow left to right in rows of 24 columns.
pub(super) struct Board {
    panels: Vec<Value>,
    id: u32,
    x: u32,
    y: u32,
    row_h: u32,
}

impl Board {
    pub(super) fn new() -> Self {
        Board {
            panels: Vec::new(),
            id: 0,
            x: 0,
            y: 0,
            row_h: 0,
        }
    }

    fn next_id(&mut self) -> u32 {
        self.id += 1;
        self.id
    }

    fn newline(&mut self) {
        if self.x > 0 {
            self.y += self.row_h;
            self.x = 0;
            self.row_h = 0;
        }
    }

    pub(super) fn row(&mut self, title: &str) {
        self.newline();
        let id = self.next_id();
        self.panels.push(json!({
            "type": "row", "id": id, "title": title, "collapsed": false, "panels": [],
            "gridPos": { "h": 1, "w": 24, "x": 0, "y": self.y },
        }));
        self.y += 1;
    }

    /// Places a panel of `w` × `h` after the last one (on a new line when it does not fit),
    /// then lets `tune` adjust its JSON.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn panel(
        &mut self,
        kind: Kind,
        title: &str,
        description: &str,
        unit: &str,
        w: u32,
        h: u32,
        queries: Vec<Q>,
        tune: impl FnOnce(&mut Value),
    ) {
        if self.x + w > 24 {
            self.newline();
        }
        let id = self.next_id();
        let targets = targets(kind, &queries);
        let (ty, custom, options) = style(kind);
        let mut p = json!({
            "type": ty,
            "id": id,
            "title": title,
            "description": description,
            "datasource": ds(),
            "gridPos": { "h": h, "w": w, "x": self.x, "y": self.y },
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "color": { "mode": if kind == Kind::Stat { "thresholds" } else { "palette-classic" } },
                    "thresholds": { "mode": "absolute", "steps": [{ "color": "green", "value": null }] },
                    "custom": custom,
                },
                "overrides": [],
            },
            "options": options,
            "targets": targets,
        });
        tune(&mut p);
        self.panels.push(p);
        self.x += w;
        self.row_h = self.row_h.max(h);
    }

    pub(super) fn finish(
        self,
        uid: &str,
        title: &str,
        description: &str,
        variables: Vec<Value>,
        time: &str,
    ) -> Value {
        json!({
            "uid": uid,
            "title": title,
            "description": description,
            "tags": ["cellwatch"],
            "editable": true,
            "graphTooltip": 1,
            "schemaVersion": 41,
            "version": 1,
            "refresh": "30s",
            "time": { "from": time, "to": "now" },
            "timezone": "browser",
            "fiscalYearStartMonth": 0,
            "liveNow": false,
            "annotations": { "list": [{
                "builtIn": 1, "datasource": { "type": "grafana", "uid": "-- Grafana --" },
                "enable": true, "hide": true, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard",
            }] },
            "links": [{
                "type": "dashboards", "tags": ["cellwatch"], "asDropdown": true, "title": "cellwatch",
                "includeVars": false, "keepTime": true, "icon": "external link",
                "targetBlank": false, "tooltip": "", "url": "",
            }],
            "templating": { "list": variables },
            "panels": self.panels,
        })
    }
}

/// A panel's targets, refIds A, B, …: range queries, or instant table queries for a table.
fn targets(kind: Kind, queries: &[Q]) -> Vec<Value> {
    let instant = matches!(kind, Kind::Table);
    queries
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut v = json!({
                "datasource": ds(),
                "expr": t.expr,
                "legendFormat": t.legend,
                "refId": ((b'A' + i as u8) as char).to_string(),
                "range": !instant,
                "instant": instant,
            });
            if instant {
                v["format"] = json!("table");
            }
            v
        })
        .collect()
}

/// A kind's panel type, `fieldConfig.defaults.custom` and `options`.
fn style(kind: Kind) -> (&'static str, Value, Value) {
    match kind {
        Kind::Timeseries | Kind::Stacked => (
            "timeseries",
            json!({
                "drawStyle": "line", "lineWidth": 1, "fillOpacity": if kind == Kind::Stacked { 30 } else { 10 },
                "showPoints": "never", "spanNulls": false,
                "stacking": { "mode": if kind == Kind::Stacked { "normal" } else { "none" }, "group": "A" },
            }),
            json!({
                "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                "tooltip": { "mode": "multi", "sort": "desc" },
            }),
        ),
        Kind::Stat => (
            "stat",
            json!({}),
            json!({
                "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                "orientation": "auto", "textMode": "auto",
            }),
        ),
        Kind::Table => (
            "table",
            json!({ "align": "auto", "filterable": false }),
            json!({ "showHeader": true, "cellHeight": "sm" }),
        ),
        Kind::StateTimeline => (
            "state-timeline",
            json!({ "fillOpacity": 70, "lineWidth": 0 }),
            json!({
                "showValue": "auto", "mergeValues": true, "rowHeight": 0.9,
                "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                "tooltip": { "mode": "single", "sort": "none" },
            }),
        ),
    }
}
