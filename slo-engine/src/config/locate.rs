use super::*;
use std::path::Path;

/// Estimates the nesting depth of YAML text in one pass, without parsing it, and returns the
/// 1-based line where it first passes [`MAX_DEPTH`]. Block structure counts each deeper
/// indentation (and each compact `- `), flow structure each open `[` or `{`; quoted strings,
/// comments and block scalars are skipped. The estimate errs high, never low for ordinary files;
/// it exists because the YAML parser takes quadratic time in the depth of flow collections.
pub fn too_deep(text: &str) -> Option<usize> {
    let mut stack: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut in_quote: Option<u8> = None;
    let mut block_scalar: Option<isize> = None;
    let mut at_value = true;
    for (n, line) in text.split('\n').enumerate() {
        let b = line.as_bytes();
        let indent = b.iter().take_while(|&&c| c == b' ').count();
        let blank = b[indent..].iter().all(u8::is_ascii_whitespace);
        if let Some(parent) = block_scalar {
            if blank || indent as isize > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut i = 0;
        let mut node_col = indent;
        let mut last_dash: isize = -1;
        if in_quote.is_none() && flow == 0 && !blank && b[indent] != b'#' {
            while stack.last().is_some_and(|&s| s >= indent) {
                stack.pop();
            }
            stack.push(indent);
            i = indent;
            while i < b.len()
                && (b[i] == b'-' || b[i] == b'?')
                && b.get(i + 1).is_none_or(|&c| c == b' ')
            {
                last_dash = i as isize;
                i += 1;
                while i < b.len() && b[i] == b' ' {
                    i += 1;
                }
                stack.push(i);
            }
            node_col = i;
        }
        if stack.len() + flow > MAX_DEPTH {
            return Some(n + 1);
        }
        // In flow context a line continues the previous one; in block context it starts a node.
        if flow == 0 {
            at_value = true;
        }
        let mut prev_space = true;
        while i < b.len() {
            let c = b[i];
            if let Some(q) = in_quote {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    in_quote = None;
                    at_value = false;
                    prev_space = false;
                }
                i += 1;
                continue;
            }
            match c {
                b' ' | b'\t' | b'\r' => {
                    prev_space = true;
                    i += 1;
                    continue;
                }
                b'#' if prev_space => break,
                b'"' | b'\'' if at_value => in_quote = Some(c),
                b'[' | b'{' if at_value || flow > 0 => {
                    flow += 1;
                    if stack.len() + flow > MAX_DEPTH {
                        return Some(n + 1);
                    }
                    at_value = true;
                }
                b']' | b'}' if flow > 0 => {
                    flow -= 1;
                    at_value = false;
                }
                b',' if flow > 0 => at_value = true,
                b':' if flow > 0 || b.get(i + 1).is_none_or(|&c| c == b' ' || c == b'\t') => {
                    at_value = true
                }
                b'|' | b'>' if at_value && flow == 0 => {
                    // Its content is indented deeper than the node that holds it: the dash's
                    // column, or on a line of its own the enclosing node's (`key:` above it).
                    block_scalar = Some(if i != node_col {
                        node_col as isize
                    } else if last_dash >= 0 {
                        last_dash
                    } else {
                        stack.len().checked_sub(2).map_or(-1, |p| stack[p] as isize)
                    });
                    break;
                }
                b'&' | b'!' if at_value => {
                    // An anchor or tag runs to a space, or in flow context to an indicator.
                    while i < b.len()
                        && !matches!(b[i], b' ' | b'\t')
                        && !(flow > 0 && matches!(b[i], b',' | b'[' | b']' | b'{' | b'}'))
                    {
                        i += 1;
                    }
                    continue;
                }
                _ => at_value = false,
            }
            prev_space = false;
            i += 1;
        }
        // A quote left open in block context ends with its line: a multi-line quoted scalar is
        // rare in a configuration, and a quote that was really the middle of a plain scalar
        // must not hide the rest of the file from the count.
        if flow == 0 {
            in_quote = None;
        }
    }
    None
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
    let indent = |l: &str| l.len() - l.trim_start().len();
    let content = |l: &str| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    };
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
    let (mut from, mut to, mut parent) = (0usize, lines.len(), -1i64);
    let mut found = 0usize;
    for part in parts {
        if let Some(idx) = part.strip_prefix('[').and_then(|i| i.parse::<usize>().ok()) {
            // The idx-th `- ` item directly under the parent.
            let items: Vec<usize> = (from..to)
                .filter(|&i| {
                    content(lines[i])
                        && lines[i].trim_start().starts_with('-')
                        && indent(lines[i]) as i64 > parent
                })
                .collect();
            let Some(min_indent) = items.iter().map(|&i| indent(lines[i])).min() else {
                break;
            };
            let items: Vec<usize> = items
                .into_iter()
                .filter(|&i| indent(lines[i]) == min_indent)
                .collect();
            let Some(&at) = items.get(idx) else { break };
            let end = items.get(idx + 1).copied().unwrap_or_else(|| {
                (at + 1..to)
                    .find(|&i| content(lines[i]) && indent(lines[i]) < min_indent)
                    .unwrap_or(to)
            });
            found = at;
            from = at;
            to = end;
            parent = min_indent as i64;
        } else {
            let key = format!("{part}:");
            let hit = (from..to).find(|&i| {
                let t = lines[i].trim_start().trim_start_matches("- ").trim_start();
                content(lines[i])
                    && (t.starts_with(&key)
                        || t.starts_with(&format!("{{ {key}"))
                        || t.contains(&format!(" {key}"))
                        || t.contains(&format!("{{{key}")))
            });
            let Some(at) = hit else { break };
            let own = indent(lines[at])
                + if lines[at].trim_start().starts_with("- ") {
                    2
                } else {
                    0
                };
            let end = (at + 1..to)
                .find(|&i| content(lines[i]) && indent(lines[i]) <= own)
                .unwrap_or(to);
            found = at;
            from = at;
            to = end;
            parent = own as i64;
        }
    }
    found + 1
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
