//! Where a field is in the YAML text (its line), and the depth pre-scan that refuses a deeply
//! nested file.

use std::path::Path;

use super::check::secret_field;
use super::error::{ConfigError, MAX_DEPTH};

/// Estimates the nesting depth of YAML text in one pass, without parsing it, and returns the
/// 1-based line where it first passes [`MAX_DEPTH`]. Block structure counts each deeper
/// indentation (and each compact `- `), flow structure each open `[` or `{`; quoted strings,
/// comments and block scalars are skipped. The estimate errs high, never low for ordinary files;
/// it exists because the YAML parser takes quadratic time in the depth of flow collections.
pub fn too_deep(text: &str) -> Option<usize> {
    let mut depth = Depth {
        stack: Vec::new(),
        flow: 0,
        in_quote: None,
        block_scalar: None,
        at_value: true,
    };
    text.split('\n')
        .position(|line| !depth.line(line.as_bytes()))
        .map(|n| n + 1)
}

/// The state of [`too_deep`]'s scan between lines.
struct Depth {
    /// Columns of the open block nodes.
    stack: Vec<usize>,
    /// Open `[` and `{`.
    flow: usize,
    /// The quote of an open quoted scalar.
    in_quote: Option<u8>,
    /// In a block scalar: the column its content is deeper than.
    block_scalar: Option<isize>,
    /// A value (not a key or plain text) may start here.
    at_value: bool,
}

impl Depth {
    fn passed(&self) -> bool {
        self.stack.len() + self.flow > MAX_DEPTH
    }

    /// Reads one line; `false` when the depth passes [`MAX_DEPTH`] on it.
    fn line(&mut self, b: &[u8]) -> bool {
        let indent = b.iter().take_while(|&&c| c == b' ').count();
        let blank = b[indent..].iter().all(u8::is_ascii_whitespace);
        if let Some(parent) = self.block_scalar {
            if blank || indent as isize > parent {
                return true;
            }
            self.block_scalar = None;
        }
        let (start, node_col, last_dash) =
            if self.in_quote.is_none() && self.flow == 0 && !blank && b[indent] != b'#' {
                self.block_node(b, indent)
            } else {
                (0, indent, -1)
            };
        if self.passed() {
            return false;
        }
        // In flow context a line continues the previous one; in block context it starts a node.
        if self.flow == 0 {
            self.at_value = true;
        }
        if !self.scan(b, start, node_col, last_dash) {
            return false;
        }
        // A quote left open in block context ends with its line: a multi-line quoted scalar is
        // rare in a configuration, and a quote that was really the middle of a plain scalar
        // must not hide the rest of the file from the count.
        if self.flow == 0 {
            self.in_quote = None;
        }
        true
    }

    /// A block line: closes the nodes at or right of its indentation, opens one, and one more
    /// per compact `- ` or `? `. Returns where its content starts, the column of its node and of
    /// its last dash (-1: none).
    fn block_node(&mut self, b: &[u8], indent: usize) -> (usize, usize, isize) {
        while self.stack.last().is_some_and(|&s| s >= indent) {
            self.stack.pop();
        }
        self.stack.push(indent);
        let mut i = indent;
        let mut last_dash: isize = -1;
        while i < b.len()
            && (b[i] == b'-' || b[i] == b'?')
            && b.get(i + 1).is_none_or(|&c| c == b' ')
        {
            last_dash = i as isize;
            i += 1;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            self.stack.push(i);
        }
        (i, i, last_dash)
    }

    /// The rest of a line from `i`: quotes, comments, flow brackets, block scalars, anchors and
    /// tags. `false` when a bracket passes [`MAX_DEPTH`].
    fn scan(&mut self, b: &[u8], mut i: usize, node_col: usize, last_dash: isize) -> bool {
        let mut prev_space = true;
        while i < b.len() {
            let c = b[i];
            if let Some(q) = self.in_quote {
                i = self.quoted(b, i, q, &mut prev_space);
                continue;
            }
            match c {
                b' ' | b'\t' | b'\r' => {
                    prev_space = true;
                    i += 1;
                    continue;
                }
                b'#' if prev_space => break,
                b'"' | b'\'' if self.at_value => self.in_quote = Some(c),
                b'[' | b'{' if self.at_value || self.flow > 0 => {
                    self.flow += 1;
                    if self.passed() {
                        return false;
                    }
                    self.at_value = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    self.at_value = false;
                }
                b',' if self.flow > 0 => self.at_value = true,
                b':' if self.flow > 0 || b.get(i + 1).is_none_or(|&c| c == b' ' || c == b'\t') => {
                    self.at_value = true
                }
                b'|' | b'>' if self.at_value && self.flow == 0 => {
                    self.block_scalar = Some(self.scalar_parent(i, node_col, last_dash));
                    break;
                }
                b'&' | b'!' if self.at_value => {
                    i = self.skip_property(b, i);
                    continue;
                }
                _ => self.at_value = false,
            }
            prev_space = false;
            i += 1;
        }
        true
    }

    /// Inside a quoted scalar at `i`: where to go on (escapes and `''` skipped).
    fn quoted(&mut self, b: &[u8], i: usize, q: u8, prev_space: &mut bool) -> usize {
        let c = b[i];
        if q == b'"' && c == b'\\' {
            return i + 2;
        }
        if c == q {
            if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                return i + 2;
            }
            self.in_quote = None;
            self.at_value = false;
            *prev_space = false;
        }
        i + 1
    }

    /// A block scalar's content is indented deeper than the node that holds it: the dash's
    /// column, or on a line of its own the enclosing node's (`key:` above it).
    fn scalar_parent(&self, i: usize, node_col: usize, last_dash: isize) -> isize {
        if i != node_col {
            node_col as isize
        } else if last_dash >= 0 {
            last_dash
        } else {
            let s = &self.stack;
            s.len().checked_sub(2).map_or(-1, |p| s[p] as isize)
        }
    }

    /// An anchor or tag runs to a space, or in flow context to an indicator.
    fn skip_property(&self, b: &[u8], mut i: usize) -> usize {
        while i < b.len()
            && !matches!(b[i], b' ' | b'\t')
            && !(self.flow > 0 && matches!(b[i], b',' | b'[' | b']' | b'{' | b'}'))
        {
            i += 1;
        }
        i
    }
}

/// Strips a byte-order mark and refuses text nested deeper than [`MAX_DEPTH`], before the YAML
/// parser sees it.
pub(crate) fn prepare<'a>(text: &'a str, path: &Path) -> Result<&'a str, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match too_deep(text) {
        Some(line) => Err(ConfigError::TooDeep {
            path: path.to_path_buf(),
            line,
            message: format!(
                "nested deeper than {MAX_DEPTH} levels (indentation and brackets): flatten the file"
            ),
        }),
        None => Ok(text),
    }
}

/// Finds the line of a field path (`slos[2].sli.latency`) in block-style YAML: the line of the
/// deepest part found.
pub fn locate(text: &str, field: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    // The lines the next part is looked for in, and the indentation of their parent.
    let (mut from, mut to, mut parent) = (0usize, lines.len(), -1i64);
    let mut found = 0usize;
    for part in path_parts(field) {
        let hit = match part.strip_prefix('[').and_then(|i| i.parse::<usize>().ok()) {
            Some(idx) => find_item(&lines, from, to, parent, idx),
            None => find_key(&lines, from, to, &part),
        };
        let Some((at, end, own)) = hit else { break };
        found = at;
        from = at;
        to = end;
        parent = own as i64;
    }
    found + 1
}

/// `slos[2].sli` → `slos`, `[2`, `sli`.
fn path_parts(field: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for seg in field.split('.') {
        match seg.split_once('[') {
            Some((key, rest)) => {
                if !key.is_empty() {
                    parts.push(key.to_string());
                }
                for idx in rest.split('[') {
                    parts.push(format!("[{}", idx.trim_end_matches(']')));
                }
            }
            None => parts.push(seg.to_string()),
        }
    }
    parts
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

/// Neither blank nor a comment.
fn content(l: &str) -> bool {
    let t = l.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// The idx-th `- ` item directly under the parent: its line, where it ends, its indentation.
fn find_item(
    lines: &[&str],
    from: usize,
    to: usize,
    parent: i64,
    idx: usize,
) -> Option<(usize, usize, usize)> {
    let items: Vec<usize> = (from..to)
        .filter(|&i| {
            content(lines[i])
                && lines[i].trim_start().starts_with('-')
                && indent(lines[i]) as i64 > parent
        })
        .collect();
    let min_indent = items.iter().map(|&i| indent(lines[i])).min()?;
    let items: Vec<usize> = items
        .into_iter()
        .filter(|&i| indent(lines[i]) == min_indent)
        .collect();
    let &at = items.get(idx)?;
    let end = items.get(idx + 1).copied().unwrap_or_else(|| {
        (at + 1..to)
            .find(|&i| content(lines[i]) && indent(lines[i]) < min_indent)
            .unwrap_or(to)
    });
    Some((at, end, min_indent))
}

/// The first line holding `key:` (in block or flow style): its line, where its value ends, and
/// its own indentation (a `- ` item's key is two columns right of the dash).
fn find_key(lines: &[&str], from: usize, to: usize, part: &str) -> Option<(usize, usize, usize)> {
    let key = format!("{part}:");
    let at = (from..to).find(|&i| {
        let t = lines[i].trim_start().trim_start_matches("- ").trim_start();
        content(lines[i])
            && (t.starts_with(&key)
                || t.starts_with(&format!("{{ {key}"))
                || t.contains(&format!(" {key}"))
                || t.contains(&format!("{{{key}")))
    })?;
    let own = indent(lines[at])
        + if lines[at].trim_start().starts_with("- ") {
            2
        } else {
            0
        };
    let end = (at + 1..to)
        .find(|&i| content(lines[i]) && indent(lines[i]) <= own)
        .unwrap_or(to);
    Some((at, end, own))
}

/// A serde error as a [`ConfigError::Syntax`]: the field's path and position; the value is left
/// out of the message when the field may hold a secret.
pub(crate) fn syntax_error(
    path: &Path,
    text: &str,
    first_line: usize,
    prefix: &str,
    e: serde_path_to_error::Error<yaml_serde::Error>,
) -> ConfigError {
    let field = match e.path().to_string().as_str() {
        "." if prefix.is_empty() => ".".to_string(),
        "." => prefix.trim_end_matches('.').to_string(),
        p => format!("{prefix}{p}"),
    };
    let inner = e.into_inner();
    let (line, column) = inner
        .location()
        .map_or((locate(text, &field), 1), |l| (l.line(), l.column()));
    let mut message = inner.to_string();
    // yaml_serde repeats (part of) the field and the position, which the error already gives.
    if let Some((head, rest)) = message.split_once(": ")
        && !head.is_empty()
        && field.starts_with(head)
        && !head.contains(' ')
    {
        message = rest.to_string();
    }
    if inner.location().is_some()
        && let Some(at) = message.rfind(" at line ")
        && message[at..].contains(" column ")
    {
        message.truncate(at);
    }
    if secret_field(&field) {
        message = match message.find(", expected") {
            Some(at) => format!("the value of {field} is not valid here{}", &message[at..]),
            None => format!("the value of {field} is not valid here"),
        };
    }
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line: line + first_line - 1,
        column,
        field,
        message,
    }
}
