//! Finds the line of a field in a lab file's YAML text by its path (`nodes.a.links[0].ip`),
//! for errors found after parsing.

use std::fmt;

/// One step of a field's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field's path, printed as `nodes.a.links[0].ip`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn key(&self, k: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_owned()));
        p
    }

    pub fn index(&self, i: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

pub fn path(keys: &[&str]) -> FieldPath {
    FieldPath(keys.iter().map(|k| Seg::Key((*k).to_owned())).collect())
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A line split into its indentation (list markers counted as indentation), whether it
/// opens a list item (and where its dash is), and its key, if it has one.
struct Line<'a> {
    indent: usize,
    dash: Option<usize>,
    key: Option<&'a str>,
}

fn split(line: &str) -> Option<Line<'_>> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let mut indent = line.len() - trimmed.len();
    let mut rest = trimmed;
    let mut dash = None;
    while let Some(r) = rest
        .strip_prefix('-')
        .filter(|r| r.is_empty() || r.starts_with(' '))
    {
        dash.get_or_insert(indent);
        let r2 = r.trim_start();
        indent += 1 + (r.len() - r2.len());
        rest = r2;
    }
    let key = rest
        .find(':')
        .filter(|&i| rest[i + 1..].is_empty() || rest[i + 1..].starts_with(' '))
        .map(|i| rest[..i].trim().trim_matches(|c| c == '"' || c == '\''));
    Some(Line { indent, dash, key })
}

/// The 1-based line of the field at `path` (a value written in flow style, `{a: 1}`, is not
/// found: see [`nearest_line`]).
pub fn line_of(text: &str, path: &FieldPath) -> Option<usize> {
    let lines: Vec<Option<Line<'_>>> = text.lines().map(split).collect();
    // Search from `start`; the fields of the current block are deeper than `parent`.
    let (mut start, mut parent, mut found) = (0, None, None);
    for seg in &path.0 {
        let (line, indent) = match seg {
            Seg::Key(k) => find_key(&lines, start, parent, k)?,
            Seg::Index(n) => find_item(&lines, start, parent, *n)?,
        };
        found = Some(line + 1);
        // A key's children start on the next line; an item's first key is on its own line.
        start = if matches!(seg, Seg::Key(_)) {
            line + 1
        } else {
            line
        };
        parent = Some(indent);
    }
    found
}

/// The line and indentation of `key` in the block after `start` deeper than `parent`.
fn find_key(
    lines: &[Option<Line<'_>>],
    start: usize,
    parent: Option<usize>,
    key: &str,
) -> Option<(usize, usize)> {
    for (i, l) in lines.iter().enumerate().skip(start) {
        let Some(l) = l else { continue };
        let outside =
            parent.is_some_and(|p| l.indent <= p || (i > start && l.dash.is_some_and(|d| d <= p)));
        if outside {
            return None;
        }
        if l.key == Some(key) && (parent.is_some() || l.indent == 0) {
            return Some((i, l.indent));
        }
    }
    None
}

/// The line and dash column of the `n`th item of the list after `start`.
fn find_item(
    lines: &[Option<Line<'_>>],
    start: usize,
    parent: Option<usize>,
    n: usize,
) -> Option<(usize, usize)> {
    let mut column = None;
    let mut count = 0;
    for (i, l) in lines.iter().enumerate().skip(start) {
        let Some(l) = l else { continue };
        let Some(d) = l.dash else {
            if parent.is_some_and(|p| l.indent <= p) {
                return None;
            }
            continue;
        };
        let c = *column.get_or_insert(d);
        if d < c || parent.is_some_and(|p| d < p) {
            return None;
        }
        if d == c {
            if count == n {
                return Some((i, d));
            }
            count += 1;
        }
    }
    None
}

/// Like [`line_of`], falling back to the nearest enclosing field that exists.
pub fn nearest_line(text: &str, path: &FieldPath) -> Option<usize> {
    (1..=path.0.len())
        .rev()
        .find_map(|n| line_of(text, &FieldPath(path.0[..n].to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
name: l
networks:
  front:
    subnet: 10.101.0.0/24
  back: {subnet: 10.101.1.0/24}
nodes:
  a:
    links:
      - network: front
        ip: 10.101.0.9
      - network: back
        ip: 10.101.1.9
    exec:
      - sysctl -w net.ipv4.ip_forward=1
  b:
    links:
    - network: front
      ip: 10.101.0.10
";

    #[test]
    fn finds_nested_fields() {
        let p = path(&["nodes", "a", "links"]);
        assert_eq!(line_of(TEXT, &p.index(0).key("ip")), Some(10));
        assert_eq!(line_of(TEXT, &p.index(1).key("network")), Some(11));
        assert_eq!(line_of(TEXT, &p.index(1).key("ip")), Some(12));
        let b = path(&["nodes", "b", "links"]);
        assert_eq!(line_of(TEXT, &b.index(0).key("ip")), Some(18));
        assert_eq!(
            line_of(TEXT, &path(&["networks", "front", "subnet"])),
            Some(4)
        );
        assert_eq!(
            line_of(TEXT, &path(&["nodes", "a", "exec"]).index(0)),
            Some(14)
        );
    }

    #[test]
    fn flow_style_falls_back_to_parent() {
        let p = path(&["networks", "back", "subnet"]);
        assert_eq!(line_of(TEXT, &p), None);
        assert_eq!(nearest_line(TEXT, &p), Some(5));
    }

    proptest::proptest! {
        /// Any text and path: a line or None, never a panic.
        #[test]
        fn never_panics(text in "[ a-z:\\-#\\n{}\\[\\]'\"é]{0,200}", keys in proptest::collection::vec("[a-z]{1,3}", 0..4), index in 0usize..4) {
            let mut p = FieldPath(keys.into_iter().map(Seg::Key).collect());
            p = p.index(index).key("ip");
            if let Some(l) = nearest_line(&text, &p) {
                proptest::prop_assert!(l >= 1 && l <= text.lines().count());
            }
            if let Ok(f) = crate::lab::file::parse(&text) {
                let _ = crate::lab::check::check(&f);
            }
        }
    }

    #[test]
    fn prints_paths() {
        let p = path(&["nodes", "a", "links"]).index(1).key("ip");
        assert_eq!(p.to_string(), "nodes.a.links[1].ip");
    }
}
