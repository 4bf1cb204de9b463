//! The engine's configuration: YAML, typed, unknown fields refused. Every error names the file,
//! the line and the field, and says what to do.
//!
//! ```yaml
//! cells:
//!   - name: studio-a
//!     nodes:
//!       - { name: studio-a-1, url: "http://studio-a-1.local:9817/metrics" }
//! slos:
//!   - name: latency-2s
//!     objective: 0.99
//!     period: 30d
//!     sli: { latency: { threshold: 2s } }
//! ```

pub use cellwatch_http::file::{read_bounded, read_text};

use crate::util::text::quote;

mod check;
mod error;
mod load;
mod locate;
mod message;
pub mod openslo;
mod raw;
mod receiver;
mod secret_source;
mod types;
mod validate;

pub use check::*;
pub use error::*;
pub use load::*;
pub use locate::*;
pub use message::*;
pub use raw::*;
pub use receiver::*;
pub use secret_source::*;
pub use types::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::text::QUOTE_CHARS;
    use crate::util::text::{clip, one_line, regex_error};

    use std::path::Path;
    use std::time::Duration;

    const GOOD: &str = "\
cells:
  - name: studio-a
    nodes:
      - name: studio-a-1
        url: http://studio-a-1.local:9817/metrics
      - name: studio-a-2
        url: http://studio-a-2.local:9817/metrics
        labels: { rack: r1 }
slos:
  - name: latency-2s
    objective: 0.99
    period: 30d
    sli:
      latency:
        threshold: 2s
  - name: efficiency
    cells: [studio-a]
    objective: 0.95
    period: calendar-month
    timezone: Europe/Berlin
    sli:
      tokens_per_kwh:
        threshold: 150000
";

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("cells.yaml"))
    }

    #[test]
    fn a_good_config_resolves() {
        let c = p(GOOD).unwrap();
        assert_eq!(c.cells[0].nodes.len(), 2);
        assert_eq!(
            c.source,
            Source::Scrape {
                interval: Duration::from_secs(15),
                ca_pem: None,
                basic_auth: None,
            }
        );
        assert_eq!(c.slos[0].sli, Sli::Latency(2.0));
        assert_eq!(
            c.slos[0].period,
            Period::Rolling(Duration::from_secs(30 * 86400))
        );
        assert_eq!(c.slos[0].cells, ["studio-a"]);
        assert_eq!(
            c.slos[1].budgeting,
            Budgeting::Timeslices {
                slice: Duration::from_secs(300),
                slice_target: 0.95
            }
        );
        assert_eq!(
            c.slos[1].period,
            Period::CalendarMonth(chrono_tz::Europe::Berlin)
        );
    }

    fn error(text: &str) -> String {
        p(text).unwrap_err().to_string()
    }

    #[test]
    fn alerting_is_checked() {
        let with = |a: &str| format!("{GOOD}alerting:\n{a}");
        let ok = p(&with(
            "  group_wait: 10s\n  receivers:\n    - name: oncall\n      email: { to: [a@b.c], from: x@y.z, smarthost: \"smtp:25\", tls: none }\n",
        ))
        .unwrap();
        assert_eq!(ok.alerting.timing.group_wait, 10);
        assert_eq!(
            ok.alerting.routes.len(),
            1,
            "everything to the first receiver"
        );
        let e = error(&with(
            "  receivers:\n    - name: oncall\n      email: { to: [a@b.c], from: x@y.z, smarthost: smtp }\n",
        ));
        assert!(
            e.contains("alerting.receivers[0].email.smarthost") && e.contains("host:port"),
            "{e}"
        );
        let e = error(&with(
            "  receivers:\n    - name: oncall\n      webhook: { url: \"http://h/x\" }\n  routes:\n    - { receiver: pager }\n",
        ));
        assert!(
            e.contains("alerting.routes[0].receiver") && e.contains("no receiver named \"pager\""),
            "{e}"
        );
        let e = error(&with("  receivers:\n    - name: oncall\n"));
        assert!(e.contains("no integration"), "{e}");
        let e = error(&with("  group_wait: soon\n"));
        assert!(e.contains("alerting.group_wait"), "{e}");
        let e = error(&with(
            "  receivers:\n    - name: hook\n      webhook: { url: \"http://h/x\" }\n  reports:\n    - { name: weekly, schedule: \"0 0 8 * * Mon\", receiver: hook }\n",
        ));
        assert!(
            e.contains("alerting.reports[0].receiver") && e.contains("email"),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}maintenance:\n  - {{ name: m, schedule: \"every sunday\", duration: 2h }}\n"
        ));
        assert!(
            e.contains("maintenance[0].schedule") && e.contains("seconds first"),
            "{e}"
        );
    }

    #[test]
    fn cell_health_is_checked() {
        let cell = |extra: &str| {
            GOOD.replace(
                "        labels: { rack: r1 }\n",
                &format!("        labels: {{ rack: r1 }}\n{extra}"),
            )
        };
        let c = p(&cell(
            "    topology: [[\"studio-a-1:en2\", studio-a-2]]\n    link_speed: 80Gb/s\n    rdma: true\n    power_cap_watts: 2400\n",
        ))
        .unwrap();
        let cell0 = &c.cells[0];
        assert_eq!(cell0.link_speed, Some(1e10));
        assert_eq!(cell0.power_cap_watts, Some(2400.0));
        let links = cell0.expected_links(None);
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].a.port.as_deref(), Some("en2"));
        assert_eq!(links[0].b.node, "studio-a-2");
        assert_eq!(c.health, HealthRules::default());
        let mesh = p(&cell("    topology: mesh\n")).unwrap();
        assert_eq!(mesh.cells[0].expected_links(None).len(), 1);
        for (extra, field, words) in [
            (
                "    topology: star\n",
                "cells[0].topology",
                "use mesh, chain, learn",
            ),
            (
                "    topology: [[studio-a-1, studio-z]]\n",
                "cells[0].topology[0]",
                "not a node of the cell",
            ),
            (
                "    topology: [[studio-a-1, studio-a-1]]\n",
                "cells[0].topology[0]",
                "to itself",
            ),
            (
                "    topology: [[studio-a-1]]\n",
                "cells[0].topology[0]",
                "a pair of ends",
            ),
            (
                "    topology: mesh\n    link_speed: fast\n",
                "cells[0].link_speed",
                "80Gb/s",
            ),
            ("    rdma: true\n", "cells[0].topology", "set topology"),
            (
                "    power_cap_watts: -5\n",
                "cells[0].power_cap_watts",
                "positive",
            ),
        ] {
            let e = error(&cell(extra));
            assert!(e.contains(field) && e.contains(words), "{extra}: {e}");
        }
        let e = error(&format!("{GOOD}health: {{ power_warn_share: 1.5 }}\n"));
        assert!(e.contains("health.power_warn_share"), "{e}");
        let e = error(&format!("{GOOD}health: {{ flap_transitions: 1 }}\n"));
        assert!(e.contains("health.flap_transitions"), "{e}");
        let e = error(&format!("{GOOD}health: {{ restart_windw: 1m }}\n"));
        assert!(e.contains("restart_windw"), "{e}");
        let slo = |sli: &str, more: &str| {
            format!(
                "{GOOD}  - {{ name: h, objective: 0.99, period: 30d, {more}sli: {{ {sli}: {{}} }} }}\n"
            )
        };
        let c = p(&slo("link_health", "")).unwrap();
        let h = c.slos.iter().find(|s| s.name == "h").unwrap();
        assert_eq!(
            h.budgeting,
            Budgeting::Timeslices {
                slice: Duration::from_secs(60),
                slice_target: 1.0
            }
        );
        let e = error(&slo("power_cap", "budgeting: occurrences, "));
        assert!(e.contains("judged per minute"), "{e}");
        let e = error(&slo(
            "power_cap",
            "slice_target: 0.9, budgeting: timeslices, ",
        ));
        assert!(e.contains("omit slice_target"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = error(&GOOD.replace("threshold: 2s", "threshold: 1.5s"));
        assert!(
            e.starts_with(
                "cells.yaml:15: slos[0].sli.latency.threshold: 1.5s is not a bucket bound"
            ),
            "{e}"
        );
        let e = error(&GOOD.replace("objective: 0.95", "objective: 95"));
        assert!(
            e.starts_with("cells.yaml:18: slos[1].objective: 95 is not a ratio"),
            "{e}"
        );
        let e = error(&GOOD.replace("    cells: [studio-a]", "    cells: [studio-b]"));
        assert!(
            e.starts_with("cells.yaml:17: slos[1].cells: no cell named \"studio-b\""),
            "{e}"
        );
        let e = error(&GOOD.replace("Europe/Berlin", "Mars/Olympus"));
        assert!(e.starts_with("cells.yaml:20: slos[1].timezone:"), "{e}");
        let e = error(&GOOD.replace("    period: 30d", "    period: 30 fortnights"));
        assert!(e.starts_with("cells.yaml:12: slos[0].period:"), "{e}");
    }

    #[test]
    fn tpot_and_throughput_are_checked() {
        let with = |sli: &str, more: &str| {
            format!(
                "{GOOD}  - name: n\n    objective: 0.99\n    period: 30d\n{more}    sli:\n{sli}"
            )
        };
        let tpot = |t: &str| with(&format!("      tpot:\n        threshold: {t}\n"), "");
        let c = p(&tpot("100ms")).unwrap();
        assert_eq!(c.slos[2].sli, Sli::Tpot(0.1));
        assert_eq!(c.slos[2].budgeting, Budgeting::Occurrences);
        assert_eq!(c.tpot_buckets, cellwatch_metrics::DEFAULT_TPOT_BUCKETS);
        // Not a bound of tpot_buckets (2 s is one of buckets:, which does not count): the error
        // names the field, its line, the key and its bounds.
        let e = error(&tpot("2s"));
        assert!(
            e.starts_with("cells.yaml:29: slos[2].sli.tpot.threshold: 2s is not a bucket bound (tpot_buckets: 0.01, 0.025,")
                && e.contains("2.5s")
                && e.contains("to tpot_buckets: in this file"),
            "{e}"
        );
        // A bound of a configured tpot_buckets.
        let c = p(&format!("{}tpot_buckets: [0.02, 0.04]\n", tpot("40ms"))).unwrap();
        assert_eq!(c.slos[2].sli, Sli::Tpot(0.04));
        let e = error(&format!("{}tpot_buckets: [0.04, 0.02]\n", tpot("40ms")));
        assert!(
            e.contains(
                "tpot_buckets: bucket bounds must be positive and increasing (given: [0.04, 0.02])"
            ),
            "{e}"
        );
        let e = error(&tpot("100ms\n        extra: 1"));
        assert!(e.contains("unknown field `extra`"), "{e}");

        let throughput = |floor: &str, more: &str| {
            with(
                &format!("      throughput:\n        floor: {floor}\n"),
                more,
            )
        };
        let c = p(&throughput("20", "")).unwrap();
        assert_eq!(c.slos[2].sli, Sli::Throughput { floor: 20.0 });
        assert_eq!(
            c.slos[2].budgeting,
            Budgeting::Timeslices {
                slice: Duration::from_secs(60),
                slice_target: 1.0
            }
        );
        for bad in ["0", "-3", ".nan", ".inf"] {
            let e = error(&throughput(bad, ""));
            assert!(
                e.starts_with("cells.yaml:29: slos[2].sli.throughput.floor:")
                    && e.contains("not a positive number of generated tokens per second"),
                "{bad}: {e}"
            );
        }
        let e = error(&throughput("many", ""));
        assert!(e.contains("slos[2].sli.throughput.floor"), "{e}");
        let e = error(&throughput("20\n        ceiling: 30", ""));
        assert!(e.contains("unknown field `ceiling`"), "{e}");
        let e = error(&throughput("20", "    budgeting: occurrences\n"));
        assert!(
            e.contains("slos[2].budgeting") && e.contains("per minute"),
            "{e}"
        );
        let e = error(&throughput("20", "    slice: 5m\n"));
        assert!(
            e.contains("slos[2].slice") && e.contains("omit slice"),
            "{e}"
        );
        let e = error(&throughput("20", "    slice_target: 0.9\n"));
        assert!(e.contains("slos[2].slice_target"), "{e}");
        // Both read the exporters' series: the prometheus source reads them too.
        let prom = format!(
            "{}source:\n  prometheus: {{ url: \"http://p:9090\" }}\n",
            throughput("20", "")
        );
        assert!(p(&prom).is_ok());
    }

    #[test]
    fn unknown_fields_and_types_are_syntax_errors_with_positions() {
        let e = error(&GOOD.replace("    objective: 0.99", "    objectiv: 0.99"));
        assert!(
            e.starts_with("cells.yaml:11:") && e.contains("unknown field `objectiv`"),
            "{e}"
        );
        let e = error(&GOOD.replace("threshold: 150000", "threshold: lots"));
        assert!(
            e.starts_with("cells.yaml:23:") && e.contains("slos[1].sli.tokens_per_kwh.threshold"),
            "{e}"
        );
        let e = error("cells: {}\n");
        assert!(e.starts_with("cells.yaml:1:"), "{e}");
        let e = error("not: [valid\n");
        assert!(e.starts_with("cells.yaml:"), "{e}");
    }

    #[test]
    fn cross_field_rules() {
        let e = error(&GOOD.replace(
            "        threshold: 150000",
            "        threshold: 150000\n    budgeting: occurrences",
        ));
        assert!(
            e.contains("slos[1].budgeting") && e.contains("timeslices"),
            "{e}"
        );
        let e = error(&GOOD.replace("    period: 30d", "    period: 30d\n    timezone: UTC"));
        assert!(e.contains("slos[0].timezone"), "{e}");
        let e = error(&GOOD.replace("studio-a-2\n", "studio-a-1\n"));
        assert!(
            e.contains("cells[0].nodes[1].name") && e.contains("twice"),
            "{e}"
        );
        let e = error(&GOOD.replace("{ rack: r1 }", "{ cell: x }"));
        assert!(e.contains("cells[0].nodes[1].labels"), "{e}");
        let e = error(&GOOD.replace("http://studio-a-1.local:9817/metrics", "studio-a-1:9817"));
        assert!(e.contains("cells[0].nodes[0].url"), "{e}");
    }

    #[test]
    fn names_slices_objectives_and_sources_that_cannot_work() {
        let e = error(&GOOD.replace("- name: latency-2s", "- name: 'lat \"p99\"'"));
        assert!(
            e.contains("slos[0].name") && e.contains("letters, digits"),
            "{e}"
        );
        let e = error(&GOOD.replace(
            "    period: 30d",
            "    period: 1h\n    budgeting: timeslices\n    slice: 2h",
        ));
        assert!(
            e.contains("slos[0].slice") && e.contains("half the period"),
            "{e}"
        );
        let e = error(&GOOD.replace("objective: 0.99", "objective: 0.9"));
        assert!(
            e.contains("slos[0].objective") && e.contains("cannot happen"),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}source:\n  prometheus: {{ url: \"prometheus:9090\" }}\n"
        ));
        assert!(
            e.contains("source.prometheus.url") && e.contains("http://prometheus:9090"),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}source:\n  prometheus: {{ url: \"http://p:9090\", headers: {{ \"a b\": x }} }}\n"
        ));
        assert!(e.contains("source.prometheus.headers"), "{e}");
    }

    #[test]
    fn values_in_messages_are_cut_and_on_one_line() {
        assert_eq!(quote("studio-a"), "\"studio-a\"");
        let long = "é".repeat(150);
        let q = quote(&long);
        assert!(q.ends_with("\"… (300 bytes)"), "{q}");
        assert_eq!(q.chars().filter(|&c| c == 'é').count(), QUOTE_CHARS);
        assert_eq!(clip("a\nb"), "a\\nb");
        assert_eq!(
            one_line("regex parse error:\n    (\n    ^\nerror: unclosed group"),
            "regex parse error:; (; ^; error: unclosed group"
        );
        assert!(one_line(&"x".repeat(10_000)).len() < 700);
        let pattern = String::from("studio-(");
        let e = regex::Regex::new(&pattern).unwrap_err();
        assert_eq!(regex_error(&e), "unclosed group");
        let e = ConfigError::Invalid {
            path: "c.yaml".into(),
            line: 1,
            field: "f".repeat(1000),
            message: "two\nlines".into(),
        }
        .to_string();
        assert!(!e.contains('\n') && e.len() < 200, "{e}");
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(duration("10y"), Ok(MAX_DURATION));
        for v in [
            "10y 1s",
            "400000000000y",
            "292277024626y",
            "99999999999999999999y",
        ] {
            let e = duration(v).unwrap_err();
            assert!(
                e.contains("out of range") && e.contains("10 years"),
                "{v}: {e}"
            );
        }
        assert!(duration("soon").unwrap_err().contains("examples"));
    }

    #[test]
    fn a_cron_must_fire_at_all() {
        let fires = |s: &str| cron_fires(&s.parse().unwrap(), chrono_tz::UTC);
        assert!(fires("0 0 3 * * Sun"));
        assert!(fires("0 0 0 29 2 *"));
        assert!(
            fires("0 0 0 29 2 Mon"),
            "rare (both fields must match) but real"
        );
        assert!(!fires("0 0 0 30 2 *"));
        assert!(!fires("0 0 0 31 4 *"));
        assert!(!fires("0 0 0 31 4 * 2027"));
        // A one-off window that has passed, or one years ahead, keeps the configuration valid.
        assert!(fires("0 0 0 1 1 * 2020"));
        assert!(fires("0 0 0 1 1 * 2035"));
    }

    #[test]
    fn urls_need_an_http_scheme_a_host_and_a_port_that_exists() {
        let ok = |u: &str| check_url(u, false, "http://h:1");
        assert!(ok("http://n:9817/metrics").is_ok());
        assert!(ok("https://[::1]:9090").is_ok());
        assert!(ok("http://grafana/d/x?var-cell={cell}").is_ok());
        for (u, why) in [
            ("http:///////////", "empty host"),
            ("http://n:99999/metrics", "invalid port number"),
            ("http://n:0/metrics", "port 0"),
            ("ftp://n/metrics", "scheme"),
            ("studio-a-1:9817", "scheme"),
            ("http://n /metrics", "white space"),
        ] {
            let e = ok(u).unwrap_err();
            assert!(e.contains(why), "{u}: {e}");
        }
        let e = check_url("http://user:hunter2@:1/", false, "x").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = check_url("hxxp://hooks/T0/SECRET", true, "x").unwrap_err();
        assert!(
            e.starts_with("the value is not") && !e.contains("SECRET"),
            "{e}"
        );
    }

    #[test]
    fn secrets_stay_out_of_syntax_errors() {
        let e = error(&format!(
            "{GOOD}source:\n  prometheus: {{ url: \"http://p:9090\", headers: {{ Authorization: {{ Bearer: SECRET }} }} }}\n"
        ));
        assert!(
            e.contains("source.prometheus.headers") && !e.contains("SECRET"),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}alerting:\n  cell_down_for: 400000000000y\n"
        ));
        assert!(
            e.contains("alerting.cell_down_for: \"400000000000y\" is out of range"),
            "{e}"
        );
    }

    #[test]
    fn the_depth_pre_scan_passes_real_files_and_stops_deep_ones() {
        for ok in [
            GOOD,
            include_str!("../../examples/cells.yaml"),
            include_str!("../../examples/openslo/cells.yaml"),
            include_str!("../../examples/openslo/slos.openslo.yaml"),
            // Brackets and quotes inside strings, comments and block scalars do not nest.
            "a: \"[[[[[[\"\nb: '{{{{''[[['\nc: x[[[[[ # [[[[[[\nd: |\n  [[[[[[[[\n  {{{{{{{\ne: sum(rate(x{le=\"2\"}[5m]))\n",
        ] {
            let doubled = ok.replace("[[[[[[", &"[".repeat(200));
            assert_eq!(too_deep(&doubled), None, "{doubled}");
        }
        assert_eq!(too_deep(&format!("a: {}", "[".repeat(MAX_DEPTH))), Some(1));
        assert_eq!(too_deep(&format!("a: {}", "[".repeat(MAX_DEPTH - 2))), None);
        assert_eq!(
            too_deep(&format!("x: 1\na: {}", "{b: ".repeat(100))),
            Some(2)
        );
        assert_eq!(too_deep(&format!("a:\n{}x", "- ".repeat(100))), Some(2));
        let stairs: String = (0..100)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(too_deep(&stairs), Some(MAX_DEPTH + 1));
        // Tags and anchors before a bracket do not hide it.
        assert!(too_deep(&format!("a: {}", "!t [".repeat(100))).is_some());
        // A block scalar ends where its indentation does.
        assert!(too_deep(&format!("- a: |\n    text\n  b: {}", "[".repeat(100))).is_some());
        // Anchors and tags followed by a flow indicator, with no space, do not swallow it.
        assert!(too_deep(&format!("a: {}", "[&x,".repeat(100))).is_some());
        assert!(too_deep(&format!("a: {}", "[!t,".repeat(100))).is_some());
        let closed = format!("{}\n", "a: [&x]\nb: {k: !!null}\n".repeat(100));
        assert_eq!(
            too_deep(&closed),
            None,
            "closing brackets after anchors and tags count"
        );
        // A continuation line of a plain scalar that starts with `|` or a quote hides nothing.
        let deep = "[".repeat(100);
        assert!(too_deep(&format!("k: word\n |\nb: {deep}")).is_some());
        assert!(too_deep(&format!("k: word\n \"x\nb: {deep}")).is_some());
        assert!(too_deep(&format!("a: [ word\n \"x\n {deep}")).is_some());
        // A block scalar on the line after its key still hides only its own content.
        assert_eq!(too_deep("k:\n  |\n    [[[[[[[[\nb: 1\n"), None);
        assert!(too_deep(&format!("k:\n  |\n    text\nb: {deep}")).is_some());
    }

    #[test]
    fn locate_follows_paths() {
        assert_eq!(locate(GOOD, "slos[1].sli.tokens_per_kwh.threshold"), 23);
        assert_eq!(locate(GOOD, "cells[0].nodes[1].labels"), 8);
        assert_eq!(locate(GOOD, "slos[0]"), 10);
        assert_eq!(locate(GOOD, "nope"), 1);
    }

    /// Every secret follows the one rule of `util::secret`: white space at both ends removed.
    /// Before, a basic-auth password lost only its trailing CR/LF (a password ending in a space
    /// kept it) and the API token only its trailing white space; now both lose white space at
    /// both ends, as notifier secrets always did.
    #[test]
    fn secrets_lose_white_space_at_both_ends() {
        let dir = std::env::temp_dir().join(format!("cellwatch-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let password_file = dir.join("password");
        std::fs::write(&password_file, " pass word \t\r\n").unwrap();
        let b = BasicAuth {
            username: "u".into(),
            password_file: password_file.clone(),
        };
        assert_eq!(b.password().unwrap(), "pass word");
        let token = TokenSource::File(password_file.clone());
        assert_eq!(token.read().as_deref(), Some("pass word"));
        assert_eq!(token.fetch("f", "v").unwrap(), "pass word");
        std::fs::write(&password_file, " \n").unwrap();
        assert_eq!(token.read(), None, "a blank file holds no token");
        let gone = TokenSource::File(dir.join("missing"));
        let e = gone.fetch("password_file", "password_env").unwrap_err();
        assert!(
            e.starts_with("password_file ") && e.contains("missing"),
            "{e}"
        );
        let unset = TokenSource::Env("CELLWATCH_TEST_SURELY_UNSET".into());
        assert_eq!(
            unset
                .fetch("routing key file", "routing key variable")
                .unwrap_err(),
            "routing key variable CELLWATCH_TEST_SURELY_UNSET is not set"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn receivers_resolve_in_outbox_order_with_the_smarthost_split() {
        let text = format!(
            "{GOOD}alerting:\n  receivers:\n    - name: all\n      alertmanager: {{ url: \"http://am:9093/\" }}\n      webhook: {{ url: \"http://h/x\" }}\n      email: {{ to: [a@b.c], from: x@y.z, smarthost: \"smtp.example.com:465\", tls: implicit }}\n"
        );
        let c = p(&text).unwrap();
        let r = &c.alerting.receivers["all"];
        let kinds: Vec<&str> = r.integrations.iter().map(Integration::kind).collect();
        assert_eq!(kinds, ["email", "webhook", "alertmanager"]);
        let e = r.email().unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls),
            ("smtp.example.com", 465, SmtpTls::Implicit)
        );
        assert_eq!(e.auth, None);
        assert_eq!(
            r.integration("alertmanager"),
            Some(&Integration::Alertmanager(AlertmanagerApi {
                alerts_url: "http://am:9093/api/v2/alerts".into()
            }))
        );
        assert_eq!(r.integration("slack"), None);
    }
}
