//! Label matchers (Alertmanager's API v2), compiled once.

use serde::{Deserialize, Serialize};

use crate::model::Labels;

/// A label matcher, as Alertmanager's API v2 writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    /// Label name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Value, or a regular expression matched against the whole value.
    pub value: String,
    /// `value` is a regular expression.
    #[serde(default)]
    pub is_regex: bool,
    /// True: the label must match; false: it must not.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

pub(super) fn yes() -> bool {
    true
}

/// The longest regular expression a matcher may hold (bytes): longer ones are refused.
pub const MAX_REGEX_LEN: usize = 1024;

/// The most memory one matcher's compiled regular expression may take (bytes, the `regex`
/// crate's `size_limit`): a pattern that compiles bigger is refused.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

impl Matcher {
    /// Compiles the matcher: a regular expression at most [`MAX_REGEX_LEN`] bytes long that
    /// compiles within [`REGEX_SIZE_LIMIT`]. Compile once, match many times.
    pub fn compile(&self) -> Result<CompiledMatcher, String> {
        if self.name.is_empty() {
            return Err("a matcher needs a label name".into());
        }
        let test = if self.is_regex {
            let name = crate::util::text::quote(&self.name);
            if self.value.len() > MAX_REGEX_LEN {
                return Err(format!(
                    "matcher {name}: the regular expression is {} bytes long, the limit is {MAX_REGEX_LEN}",
                    self.value.len()
                ));
            }
            let re = regex::RegexBuilder::new(&format!("^(?:{})$", self.value))
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| match e {
                    regex::Error::CompiledTooBig(limit) => format!(
                        "matcher {name}: the regular expression compiles to more than {limit} bytes"
                    ),
                    e => format!(
                        "matcher {name}: not a regular expression: {}",
                        crate::util::text::regex_error(&e)
                    ),
                })?;
            Test::Regex(re)
        } else {
            Test::Equal(self.value.clone())
        };
        Ok(CompiledMatcher {
            name: self.name.clone(),
            is_equal: self.is_equal,
            test,
        })
    }

    /// Checks the matcher: a regular expression must compile within the limits.
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(|_| ())
    }
}

/// A [`Matcher`] ready to match: its regular expression compiled.
#[derive(Debug, Clone)]
pub struct CompiledMatcher {
    name: String,
    is_equal: bool,
    test: Test,
}

#[derive(Debug, Clone)]
pub(super) enum Test {
    Equal(String),
    Regex(regex::Regex),
}

impl CompiledMatcher {
    /// Whether `labels` match (a missing label is the empty string, as in Alertmanager).
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        let hit = match &self.test {
            Test::Equal(want) => v == want,
            Test::Regex(re) => re.is_match(v),
        };
        hit == self.is_equal
    }
}
