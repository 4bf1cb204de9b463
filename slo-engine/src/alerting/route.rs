//! Routes: which receivers an alert goes to, first match in order, matchers compiled once.

use crate::config::Route;
use crate::model::{CompiledMatcher, Labels, Matcher};

/// The routes with their regular expressions compiled, once, when the engine starts.
#[derive(Debug, Clone, Default)]
pub struct Routes(Vec<(Route, Option<Vec<CompiledMatcher>>)>);

impl Routes {
    /// Compiles every route's matchers (the configuration checked them: one that does not
    /// compile never matches).
    pub fn new(routes: &[Route]) -> Routes {
        Routes(
            routes
                .iter()
                .map(|r| {
                    let re: Result<Vec<_>, _> = r.match_re.iter().map(Matcher::compile).collect();
                    (r.clone(), re.ok())
                })
                .collect(),
        )
    }
}

/// The receivers an alert goes to.
pub fn receivers<'a>(routes: &'a Routes, labels: &Labels) -> Vec<&'a str> {
    matching(routes, labels)
        .into_iter()
        .map(|r| r.receiver.as_str())
        .collect()
}

/// The routes an alert takes, in order.
pub fn matching<'a>(routes: &'a Routes, labels: &Labels) -> Vec<&'a Route> {
    let mut out = Vec::new();
    for (r, re) in &routes.0 {
        if r.matchers.iter().all(|(k, v)| labels.get(k) == Some(v))
            && re
                .as_ref()
                .is_some_and(|re| re.iter().all(|m| m.matches(labels)))
        {
            out.push(r);
            if !r.continue_ {
                break;
            }
        }
    }
    out
}
