//! Cell-scoped alerting, the pure part: which alerts an evaluation calls for (multiwindow,
//! multi-burn-rate pages and tickets, budget exhausted, no data, cell down), inhibition, the
//! alert state machine (pending, firing, resolved) and Alertmanager-style grouping per cell
//! (group_wait, group_interval, repeat_interval). No IO and no clock: every step takes the
//! time, so days of incidents are tested in milliseconds.

mod health;
mod inhibit;
mod metrics;
mod mute;
mod route;
mod rules;
mod state;
mod wanted;

pub use inhibit::*;
pub use metrics::*;
pub use mute::*;
pub use route::*;
pub use rules::*;
pub use state::*;
pub use wanted::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Maintenance, NotifyPolicy, Route, Timing};
    use crate::model::{Labels, MAX_REGEX_LEN, Matcher, Silence, fingerprint, names};
    use std::collections::BTreeSet;

    use crate::config::Config;
    use crate::eval::Report;

    use crate::eval::{SloReport, WindowReport};

    const CONFIG: &str = "cells:
  - { name: studio-a, nodes: [ { name: n1, url: \"http://n1:9817/metrics\" } ] }
  - { name: studio-b, nodes: [ { name: n1, url: \"http://m1:9817/metrics\" } ] }
slos:
  - { name: latency, objective: 0.99, period: 30d, sli: { latency: { threshold: 2s } } }
  - { name: availability, objective: 0.99, period: 30d, sli: { availability: {} } }
";

    fn config() -> Config {
        crate::config::parse(CONFIG, std::path::Path::new("t.yaml")).unwrap()
    }

    /// A report in which every window of the given (cell, slo) burns at `burn`.
    fn report(at: i64, burns: &[(&str, &str, f64)]) -> Report {
        let mut r = Report {
            at,
            ..Default::default()
        };
        for cell in ["studio-a", "studio-b"] {
            for slo in ["latency", "availability"] {
                let burn = burns
                    .iter()
                    .find(|(c, s, _)| *c == cell && *s == slo)
                    .map_or(0.1, |b| b.2);
                r.slos.push(SloReport {
                    cell: cell.into(),
                    slo: slo.into(),
                    objective: 0.99,
                    budget_remaining: Some(0.5),
                    data_missing: false,
                    windows: crate::model::WINDOWS
                        .iter()
                        .map(|(w, _)| WindowReport {
                            window: w.to_string(),
                            state: "ok",
                            sli: Some(1.0 - burn * 0.01),
                            burn_rate: Some(burn),
                            total: 1000.0,
                        })
                        .collect(),
                });
            }
        }
        r
    }

    fn route(notify: NotifyPolicy, update_interval: i64) -> Vec<Route> {
        vec![Route {
            receiver: "oncall".into(),
            matchers: Labels::new(),
            match_re: Vec::new(),
            continue_: false,
            notify,
            update_interval,
        }]
    }

    /// Runs evaluations every 15 s from `from` to `to` with `burns` and returns the
    /// notifications, through one route of the default (`incident`) policy.
    fn run(
        state: &mut State,
        from: i64,
        to: i64,
        burns: &[(&str, &str, f64)],
        down: &[&str],
        muted: &dyn Fn(&Labels) -> bool,
    ) -> Vec<Notification> {
        let r = route(NotifyPolicy::Incident, 0);
        run_with(state, (from, to), burns, down, muted, &r)
    }

    /// As [`run`], through `routes`.
    fn run_with(
        state: &mut State,
        (from, to): (i64, i64),
        burns: &[(&str, &str, f64)],
        down: &[&str],
        muted: &dyn Fn(&Labels) -> bool,
        routes: &[Route],
    ) -> Vec<Notification> {
        let cfg = config();
        let timing = Timing::default();
        let down: BTreeSet<String> = down.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            let w = wanted(&cfg, &report(t, burns), &down, &timing);
            state.step_alerts(&w, t);
            out.extend(state.dispatch(&Routes::new(routes), &timing, muted, t));
            t += 15;
        }
        out
    }

    #[test]
    fn fingerprints_are_prometheus_label_set_fingerprints() {
        // prometheus/common model's test vectors.
        assert_eq!(
            fingerprint(&Labels::new()),
            format!("{:016x}", 14695981039346656037u64)
        );
        assert_eq!(
            fingerprint(&labels(&[("first-label", "first-label-value")])),
            format!("{:016x}", 5146282821936882169u64)
        );
        assert_eq!(
            fingerprint(&labels(&[
                ("first-label", "first-label-value"),
                ("second-label", "second-label-value")
            ])),
            format!("{:016x}", 3195800080984914717u64)
        );
    }

    #[test]
    fn an_incident_on_two_slos_of_a_cell_is_one_page_then_one_resolve() {
        let mut s = State::default();
        let never = |_: &Labels| false;
        // Quiet for 10 minutes, then both SLOs burn at 20× (above 14.4×) for 3 hours.
        assert!(run(&mut s, 0, 600, &[], &[], &never).is_empty());
        let burns = [
            ("studio-a", "latency", 20.0),
            ("studio-a", "availability", 20.0),
        ];
        let during = run(&mut s, 600, 600 + 3 * 3600, &burns, &[], &never);
        assert_eq!(during.len(), 1, "{during:#?}");
        let page = &during[0];
        assert_eq!(
            (page.status.as_str(), page.reason.as_str()),
            ("firing", "new_alerts")
        );
        assert_eq!(page.cell, "studio-a");
        assert_eq!(page.at, 600 + 30, "after group_wait");
        // Two SLOs at page and ticket severity: the tickets are inhibited by the pages.
        let severities: Vec<&str> = page
            .alerts
            .iter()
            .map(|a| a.labels["severity"].as_str())
            .collect();
        assert_eq!(severities, ["page", "page"], "{page:#?}");
        // Over: one resolve, for the same incident, then nothing.
        let after = run(&mut s, 600 + 3 * 3600, 600 + 6 * 3600, &[], &[], &never);
        assert_eq!(after.len(), 1, "{after:#?}");
        assert_eq!(
            (after[0].status.as_str(), after[0].reason.as_str()),
            ("resolved", "all_resolved")
        );
        assert_eq!(after[0].incident, page.key);
        assert!(
            after[0]
                .alerts
                .iter()
                .all(|a| a.status == "resolved" && a.ends_at.is_some())
        );
        assert!(s.alerts.is_empty() && s.groups.is_empty(), "{s:#?}");
    }

    #[test]
    fn a_cells_next_incident_has_keys_of_its_own() {
        let mut s = State::default();
        let never = |_: &Labels| false;
        let burns = [("studio-a", "latency", 20.0)];
        let mut keys = Vec::new();
        for (from, to, b) in [
            (0, 3600, &burns[..]),
            (3600, 3 * 3600, &[][..]),
            (3 * 3600, 4 * 3600, &burns[..]),
            (4 * 3600, 6 * 3600, &[][..]),
        ] {
            for n in run(&mut s, from, to, b, &[], &never) {
                keys.push((n.status.clone(), n.key.clone(), n.incident.clone()));
            }
        }
        assert_eq!(keys.len(), 4, "{keys:#?}");
        let unique: BTreeSet<&String> = keys.iter().map(|k| &k.1).collect();
        assert_eq!(unique.len(), 4, "{keys:#?}");
        assert_eq!(keys[1].2, keys[0].1, "the resolve threads to its own page");
        assert_eq!(keys[3].2, keys[2].1);
        assert_ne!(keys[2].2, keys[0].2, "a new incident");
    }

    #[test]
    fn a_long_incident_repeats_after_repeat_interval_when_grouped() {
        let burns = [("studio-a", "latency", 20.0)];
        let grouped = route(NotifyPolicy::Grouped, 0);
        let mut s = State::default();
        let n = run_with(&mut s, (0, 5 * 3600), &burns, &[], &|_| false, &grouped);
        let reasons: Vec<(&str, i64)> = n.iter().map(|n| (n.reason.as_str(), n.at)).collect();
        assert_eq!(reasons, [("new_alerts", 30), ("repeat", 30 + 4 * 3600)]);
        // An incident route pages once: the pager holds the incident.
        let mut s = State::default();
        let n = run(&mut s, 0, 5 * 3600, &burns, &[], &|_| false);
        let reasons: Vec<(&str, i64)> = n.iter().map(|n| (n.reason.as_str(), n.at)).collect();
        assert_eq!(reasons, [("new_alerts", 30)]);
        assert!(n[0].pages);
    }

    #[test]
    fn a_cell_down_inhibits_its_slo_alerts_and_other_cells_page_apart() {
        let mut s = State::default();
        let burns = [("studio-a", "latency", 20.0), ("studio-b", "latency", 20.0)];
        let grouped = route(NotifyPolicy::Grouped, 0);
        let n = run_with(
            &mut s,
            (0, 600),
            &burns,
            &["studio-a"],
            &|_| false,
            &grouped,
        );
        let a: Vec<&Notification> = n.iter().filter(|n| n.cell == "studio-a").collect();
        let b: Vec<&Notification> = n.iter().filter(|n| n.cell == "studio-b").collect();
        // studio-a: the burn page goes out first; the cell-down page (after 1 minute)
        // inhibits it from then on.
        assert_eq!(b.len(), 1);
        let last = a.last().unwrap();
        let names: Vec<&str> = last
            .alerts
            .iter()
            .filter(|x| x.status == "firing")
            .map(|x| x.labels["alertname"].as_str())
            .collect();
        assert_eq!(names, [names::CELL_DOWN], "{a:#?}");
        // Inhibited is not resolved: the burn page still burns, it is only not said again.
        assert!(
            a.iter()
                .flat_map(|n| &n.alerts)
                .all(|x| x.status == "firing"),
            "{a:#?}"
        );
    }

    #[test]
    fn muted_alerts_send_nothing_and_no_data_waits_its_hold() {
        let mut s = State::default();
        let n = run(
            &mut s,
            0,
            3600,
            &[("studio-a", "latency", 20.0)],
            &[],
            &|l| l.get("cell").is_some_and(|c| c == "studio-a"),
        );
        assert!(n.is_empty(), "{n:#?}");
        // No data: pending for no_data_for (10 minutes), then firing.
        let cfg = config();
        let timing = Timing::default();
        let mut r = report(0, &[]);
        r.slos[0].data_missing = true;
        let mut s = State::default();
        for t in [0, 300, 599] {
            r.at = t;
            s.step_alerts(&wanted(&cfg, &r, &BTreeSet::new(), &timing), t);
            assert!(s.alerts.values().all(|a| !a.firing()), "{t}");
        }
        s.step_alerts(&wanted(&cfg, &r, &BTreeSet::new(), &timing), 600);
        assert!(
            s.alerts
                .values()
                .any(|a| a.firing() && a.labels["alertname"] == names::NO_DATA)
        );
    }

    #[test]
    fn silences_and_maintenance_windows_mute() {
        let l = labels(&[
            ("alertname", names::BURN),
            ("cell", "studio-a"),
            ("severity", "page"),
        ]);
        let m = |name: &str, value: &str, is_regex: bool, is_equal: bool| Matcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        };
        let s = Silence {
            id: "x".into(),
            matchers: vec![
                m("cell", "studio-.*", true, true),
                m("severity", "ticket", false, false),
            ],
            starts_at: 100,
            ends_at: 200,
            created_by: "me".into(),
            comment: "work".into(),
        }
        .compile()
        .unwrap();
        assert!(!s.mutes(&l, 99) && s.mutes(&l, 100) && s.mutes(&l, 199) && !s.mutes(&l, 200));
        assert_eq!(
            (
                s.silence.state(50),
                s.silence.state(150),
                s.silence.state(250)
            ),
            ("pending", "active", "expired")
        );
        let mut other = l.clone();
        other.insert("cell".into(), "gpu-pool".into());
        assert!(!s.mutes(&other, 150));
        assert!(m("x", "(", true, true).validate().is_err());
        // Sundays 03:00 in Berlin for 2 hours.
        let w = Maintenance {
            name: "weekly".into(),
            cells: ["studio-a".to_string()].into(),
            schedule: "0 0 3 * * Sun".parse().unwrap(),
            timezone: chrono_tz::Europe::Berlin,
            duration: 7200,
            exclude_from_budget: false,
        };
        // 2026-03-01 was a Sunday; 03:00 CET is 02:00 UTC.
        let start = 1_772_330_400;
        assert!(!w.active("studio-a", start - 1));
        assert!(w.active("studio-a", start));
        assert!(w.active("studio-a", start + 7199));
        assert!(!w.active("studio-a", start + 7200));
        assert!(!w.active("gpu-pool", start + 60));
        assert!(muted(&[], std::slice::from_ref(&w), &l, start + 60));
        assert!(!muted(&[], &[w], &l, start + 7200));
    }

    #[test]
    fn burn_rates_are_configurable() {
        let cfg = crate::config::parse(
            &format!(
                "{CONFIG}alerting:\n  burn_rates:\n    - {{ severity: page, long: 1h, short: 5m, budget: 0.5 }}\n"
            ),
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        // 50 % of a 30-day budget in an hour: a factor of 360.
        let w = |burn: f64| {
            wanted(
                &cfg,
                &report(0, &[("studio-a", "latency", burn)]),
                &BTreeSet::new(),
                &Timing::default(),
            )
        };
        assert!(w(20.0).is_empty());
        let hit = w(400.0);
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].labels["severity"], "page");
        let bad = crate::config::parse(
            &format!("{CONFIG}alerting:\n  burn_rates:\n    - {{ severity: page, long: 4h, short: 5m, budget: 0.1 }}\n"),
            std::path::Path::new("t.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("alerting.burn_rates[0].long") && bad.contains("5m, 30m"),
            "{bad}"
        );
    }

    #[test]
    fn routes_match_labels_and_regexes_in_order() {
        let re = |name: &str, value: &str| Matcher {
            name: name.into(),
            value: value.into(),
            is_regex: true,
            is_equal: true,
        };
        let routes = vec![
            Route {
                receiver: "studios".into(),
                matchers: labels(&[("severity", "page")]),
                match_re: vec![re("cell", "studio-.*")],
                continue_: true,
                notify: NotifyPolicy::Incident,
                update_interval: 0,
            },
            Route {
                receiver: "pager".into(),
                matchers: labels(&[("severity", "page")]),
                match_re: Vec::new(),
                continue_: false,
                notify: NotifyPolicy::Incident,
                update_interval: 0,
            },
            Route {
                receiver: "rest".into(),
                matchers: Labels::new(),
                match_re: Vec::new(),
                continue_: false,
                notify: NotifyPolicy::Grouped,
                update_interval: 0,
            },
        ];
        let routes = Routes::new(&routes);
        let page = |cell: &str| labels(&[("cell", cell), ("severity", "page")]);
        assert_eq!(receivers(&routes, &page("studio-a")), ["studios", "pager"]);
        assert_eq!(receivers(&routes, &page("gpu-pool")), ["pager"]);
        assert_eq!(
            receivers(
                &routes,
                &labels(&[("cell", "studio-a"), ("severity", "ticket")])
            ),
            ["rest"]
        );
    }

    #[test]
    fn regular_expressions_are_bounded_in_length_and_compiled_size() {
        let re = |value: String| Matcher {
            name: "cell".into(),
            value,
            is_regex: true,
            is_equal: true,
        };
        let long = re("a".repeat(MAX_REGEX_LEN + 1)).compile().unwrap_err();
        assert_eq!(
            long,
            "matcher \"cell\": the regular expression is 1025 bytes long, the limit is 1024"
        );
        assert!(re("a".repeat(MAX_REGEX_LEN)).compile().is_ok());
        let big = re("(\\w{100}){100}".into()).compile().unwrap_err();
        assert!(
            big.starts_with("matcher \"cell\": the regular expression compiles to more than"),
            "{big}"
        );
        let bad = re("(".into()).compile().unwrap_err();
        // One line, saying what is wrong, not the pattern with a caret under it.
        assert_eq!(
            bad,
            "matcher \"cell\": not a regular expression: unclosed group"
        );
        let ok = re("studio-.*".into()).compile().unwrap();
        assert!(ok.matches(&labels(&[("cell", "studio-a")])));
        assert!(!ok.matches(&labels(&[("cell", "x-studio-a")])), "anchored");
    }

    #[test]
    fn one_bad_event_on_a_quiet_cell_never_pages() {
        // Objective 0.99, automatic min_events: the 14.4× page needs 7 events in its 1 h window
        // (one bad among 6 burns at 16.7×), the 6× page 17 in 6 h, the tickets 34 and 101.
        let quiet = |total: f64| {
            let mut r = report(0, &[("studio-a", "latency", 100.0)]);
            for w in &mut r.slos[0].windows {
                w.total = total;
            }
            wanted(&config(), &r, &BTreeSet::new(), &Timing::default())
        };
        assert!(quiet(6.0).is_empty());
        let fired = quiet(7.0);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].labels["severity"], "page");
        assert!(fired[0].annotations["burn_rates"].contains("over 1h"));
        assert_eq!(quiet(101.0).len(), 2, "page and ticket");
    }

    #[test]
    fn a_fresh_period_is_not_exhausted_by_its_first_bad_events() {
        // Budget overspent, but the period holds too few events for one bad one to mean
        // anything (0.99, automatic: more than 100): no exhausted ticket to run ahead of the
        // page; at 101 events it is wanted.
        let with_period = |total: f64| {
            let mut r = report(0, &[]);
            r.slos[0].budget_remaining = Some(-3.0);
            let mut period = r.slos[0].windows[0].clone();
            period.window = "period".into();
            r.slos[0].windows.push(period);
            for w in &mut r.slos[0].windows {
                w.total = total;
            }
            r
        };
        let exhausted = |total: f64| {
            let r = with_period(total);
            wanted(&config(), &r, &BTreeSet::new(), &Timing::default())
                .iter()
                .filter(|w| w.labels["alertname"] == names::EXHAUSTED)
                .count()
        };
        assert_eq!(exhausted(4.0), 0);
        assert_eq!(exhausted(100.0), 0);
        assert_eq!(exhausted(101.0), 1);
        // A fixed min_events is the minimum.
        let mut cfg = config();
        cfg.slos[0].min_events = crate::config::MinEvents::Fixed(10);
        let r = with_period(10.0);
        assert!(
            wanted(&cfg, &r, &BTreeSet::new(), &Timing::default())
                .iter()
                .any(|w| w.labels["alertname"] == names::EXHAUSTED)
        );
    }

    #[test]
    fn thin_windows_never_page() {
        let mut r = report(0, &[("studio-a", "latency", 100.0)]);
        for w in &mut r.slos[0].windows {
            w.burn_rate = None; // too thin for min_events
            w.state = "too_thin";
        }
        assert!(wanted(&config(), &r, &BTreeSet::new(), &Timing::default()).is_empty());
    }

    /// (reason, at, pages) of each notification.
    fn said(n: &[Notification]) -> Vec<(&str, i64, bool)> {
        n.iter()
            .map(|n| (n.reason.as_str(), n.at, n.pages))
            .collect()
    }

    #[test]
    fn alerts_that_join_a_paging_incident_send_nothing_and_one_resolve_lists_them() {
        let mut s = State::default();
        let never = |_: &Labels| false;
        // The availability page opens the incident; 10 minutes later latency joins, with its
        // tickets; 30 minutes in, both stop.
        let mut n = run(
            &mut s,
            0,
            600,
            &[("studio-a", "availability", 20.0)],
            &[],
            &never,
        );
        let both = [
            ("studio-a", "availability", 20.0),
            ("studio-a", "latency", 20.0),
        ];
        n.extend(run(&mut s, 600, 1800, &both, &[], &never));
        n.extend(run(&mut s, 1800, 7200, &[], &[], &never));
        // Opened at group_wait; resolved once every alert stayed resolved for resolve_wait.
        assert_eq!(
            said(&n),
            [
                ("new_alerts", 30, true),
                ("all_resolved", 1800 + 300, false)
            ]
        );
        let listed: BTreeSet<&str> = n[1]
            .alerts
            .iter()
            .map(|a| a.labels["slo"].as_str())
            .collect();
        assert_eq!(listed, BTreeSet::from(["availability", "latency"]));
        assert_eq!(n[1].incident, n[0].key);
        assert!(s.groups.is_empty() && s.alerts.is_empty(), "{s:#?}");
    }

    #[test]
    fn a_ticket_only_incident_that_gains_a_page_escalates_with_a_new_page() {
        let mut s = State::default();
        let never = |_: &Labels| false;
        let ticket = [("studio-a", "latency", 2.0)];
        let page = [("studio-a", "latency", 20.0)];
        // 2× fires only the 3d/1× ticket; 20× pages.
        let mut n = run(&mut s, 0, 1200, &ticket, &[], &never);
        n.extend(run(&mut s, 1200, 2400, &page, &[], &never));
        n.extend(run(&mut s, 2400, 4 * 3600, &[], &[], &never));
        // The ticket incident is closed into the page's, which a pager opens as new.
        assert_eq!(
            said(&n),
            [
                ("new_alerts", 30, false),
                ("superseded", 1200, false),
                ("escalated", 1200, true),
                ("all_resolved", 2400 + 300, false)
            ]
        );
        assert_eq!(
            (n[1].incident.as_str(), n[1].status.as_str()),
            (n[0].incident.as_str(), "resolved")
        );
        assert_ne!(n[2].incident, n[0].incident, "a pager opens a new incident");
        assert_eq!(n[3].incident, n[2].incident);
        // The one resolve lists the ticket too.
        assert_eq!(n[3].alerts.len(), 2, "{:#?}", n[3]);
        // A page that joins within group_interval of the ticket escalates at once.
        let mut s = State::default();
        let mut n = run(&mut s, 0, 60, &ticket, &[], &never);
        n.extend(run(&mut s, 60, 120, &page, &[], &never));
        assert_eq!(
            said(&n),
            [
                ("new_alerts", 30, false),
                ("superseded", 60, false),
                ("escalated", 60, true)
            ]
        );
        // Tickets alone keep Alertmanager's grouping: a new ticket after group_interval.
        let mut s = State::default();
        let mut n = run(&mut s, 0, 60, &[("studio-a", "latency", 2.0)], &[], &never);
        let two = [
            ("studio-a", "latency", 2.0),
            ("studio-a", "availability", 2.0),
        ];
        n.extend(run(&mut s, 60, 600, &two, &[], &never));
        assert_eq!(
            said(&n),
            [("new_alerts", 30, false), ("new_alerts", 330, false)]
        );
    }

    #[test]
    fn a_page_that_flaps_within_resolve_wait_stays_one_incident() {
        let mut s = State::default();
        let never = |_: &Labels| false;
        let burn = [("studio-a", "availability", 20.0)];
        let mut n = Vec::new();
        // Firing 7 minutes, quiet 3, six times; then quiet.
        for i in 0..6 {
            let t = i * 600;
            n.extend(run(&mut s, t, t + 420, &burn, &[], &never));
            n.extend(run(&mut s, t + 420, t + 600, &[], &[], &never));
        }
        n.extend(run(&mut s, 3600, 7200, &[], &[], &never));
        assert_eq!(
            said(&n),
            [
                ("new_alerts", 30, true),
                ("all_resolved", 3000 + 420 + 300, false)
            ]
        );
    }

    #[test]
    fn an_incident_route_with_update_interval_sends_digests_that_do_not_page() {
        let mut s = State::default();
        let never = |_: &Labels| false;
        let r = route(NotifyPolicy::Incident, 600);
        let one = [("studio-a", "availability", 20.0)];
        let two = [
            ("studio-a", "availability", 20.0),
            ("studio-a", "latency", 20.0),
        ];
        let mut n = run_with(&mut s, (0, 120), &one, &[], &never, &r);
        n.extend(run_with(&mut s, (120, 1800), &two, &[], &never, &r));
        assert_eq!(said(&n), [("new_alerts", 30, true), ("update", 630, false)]);
        assert_eq!(n[1].incident, n[0].key);
    }

    #[test]
    fn a_pending_mesh_split_holds_back_the_link_ticket_whose_hold_ends_first() {
        // A node's three cables are pulled; the first link is seen down one evaluation before
        // the split (its last cable a scrape later). Both hold 2 evaluations. One page, no
        // link ticket.
        let grouped = route(NotifyPolicy::Incident, 0);
        let routes = Routes::new(&grouped);
        // No group wait, as the end-to-end tests run: the first firing alert notifies at once.
        let timing = Timing {
            group_wait: 0,
            ..Timing::default()
        };
        let never = |_: &Labels| false;
        let link = Wanted {
            labels: labels(&[
                ("alertname", names::LINK_UNHEALTHY),
                ("cell", "studio-a"),
                ("node", "s4"),
                ("peer", "s1"),
                ("severity", "ticket"),
            ]),
            annotations: Labels::new(),
            hold: 30,
        };
        let split = Wanted {
            labels: labels(&[
                ("alertname", names::MESH_SPLIT),
                ("cell", "studio-a"),
                ("severity", "page"),
            ]),
            annotations: Labels::new(),
            hold: 30,
        };
        let mut s = State::default();
        let mut n = Vec::new();
        for t in (0..300).step_by(15) {
            let mut w = vec![link.clone()];
            if t >= 15 {
                w.push(split.clone());
            }
            s.step_alerts(&w, t);
            n.extend(s.dispatch(&routes, &timing, &never, t));
        }
        let sent: Vec<&str> = n
            .iter()
            .flat_map(|n| &n.alerts)
            .map(|a| a.labels["alertname"].as_str())
            .collect();
        assert_eq!(sent, vec![names::MESH_SPLIT], "{n:#?}");
    }

    #[test]
    fn an_inhibition_holds_through_the_evaluation_that_ends_its_inhibitor() {
        let cfg = config();
        let timing = Timing::default();
        let grouped = route(NotifyPolicy::Grouped, 0);
        let routes = Routes::new(&grouped);
        let mut s = State::default();
        let never = |_: &Labels| false;
        let down = BTreeSet::from(["studio-a".to_string()]);
        // The cell is down and its SLOs have no data, for an hour.
        let mut r = report(0, &[]);
        for x in &mut r.slos {
            x.data_missing = x.cell == "studio-a";
        }
        let mut n = Vec::new();
        let mut t = 0;
        while t <= 3600 {
            r.at = t;
            s.step_alerts(&wanted(&cfg, &r, &down, &timing), t);
            n.extend(s.dispatch(&routes, &timing, &never, t));
            t += 15;
        }
        // It comes back: the evaluation that drops CellDown still misses data; the next has it.
        s.step_alerts(&wanted(&cfg, &r, &BTreeSet::new(), &timing), t);
        n.extend(s.dispatch(&routes, &timing, &never, t));
        for x in &mut r.slos {
            x.data_missing = false;
        }
        for t in (t + 15..t + 1800).step_by(15) {
            r.at = t;
            s.step_alerts(&wanted(&cfg, &r, &BTreeSet::new(), &timing), t);
            n.extend(s.dispatch(&routes, &timing, &never, t));
        }
        let firing: BTreeSet<&str> = n
            .iter()
            .flat_map(|n| &n.alerts)
            .filter(|a| a.status == "firing")
            .map(|a| a.labels["alertname"].as_str())
            .collect();
        assert_eq!(firing, BTreeSet::from([names::CELL_DOWN]), "{n:#?}");
        assert_eq!(n.len(), 2, "one page, one resolve: {n:#?}");
    }
}
