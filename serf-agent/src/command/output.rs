//! HashiCorp's output formats: ryanuber/columnize's `SimpleFormat` for tables and Go's
//! `json.MarshalIndent(v, "", "  ")` for `-format json`, each trimmed of surrounding
//! white space as Go's `formatOutput` does (go-serf-agent.md §3).

/// columnize `SimpleFormat`: cells split on `|` and trimmed; every column but a line's
/// last left-aligned to the widest cell (in characters) of that column; two spaces
/// between columns; no final newline.
pub fn columnize(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(x) => *x = (*x).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                out.push_str(cell);
                out.push('\n');
            } else {
                out.push_str(cell);
                let pad = widths[i] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str("  ");
            }
        }
    }
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

/// A JSON value to print the way Go's `encoding/json` does.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null` (a nil slice or map).
    Null,
    /// A string.
    Str(String),
    /// A number, already formatted.
    Num(String),
    /// An object; keys are printed sorted, as Go sorts map keys (struct fields keep
    /// their order: use [`Json::Struct`]).
    Map(Vec<(String, Json)>),
    /// An object whose keys keep the given order (a Go struct).
    Struct(Vec<(String, Json)>),
    /// An array.
    Arr(Vec<Json>),
}

/// `json.MarshalIndent(v, "", "  ")`, trimmed.
pub fn to_json(v: &Json) -> String {
    let mut out = String::new();
    write_json(v, 0, &mut out);
    out.trim().to_owned()
}

fn indent(n: usize, out: &mut String) {
    out.push('\n');
    for _ in 0..n {
        out.push_str("  ");
    }
}

fn write_json(v: &Json, depth: usize, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Str(s) => quote(s, out),
        Json::Num(n) => out.push_str(n),
        Json::Map(entries) | Json::Struct(entries) => {
            if entries.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<&(String, Json)> = entries.iter().collect();
            if matches!(v, Json::Map(_)) {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(depth + 1, out);
                quote(k, out);
                out.push_str(": ");
                write_json(val, depth + 1, out);
            }
            indent(depth, out);
            out.push('}');
        }
        Json::Arr(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(depth + 1, out);
                write_json(item, depth + 1, out);
            }
            indent(depth, out);
            out.push(']');
        }
    }
}

/// Go's string escaping: `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX` (HTML-safe),
/// control characters as `\n`, `\r`, `\t` or `\u00XX`.
fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A string map as JSON (`null` for Go's nil map).
pub fn string_map(entries: &[(String, String)]) -> Json {
    Json::Map(
        entries
            .iter()
            .map(|(k, v)| (k.clone(), Json::Str(v.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columnize_pads_all_but_the_last_column() {
        let out = columnize(&[
            "foo|127.0.0.1:5000|alive|".to_owned(),
            "barbaz|127.0.0.1:5001|failed|role=web".to_owned(),
        ]);
        assert_eq!(
            out,
            "foo     127.0.0.1:5000  alive   \nbarbaz  127.0.0.1:5001  failed  role=web"
        );
    }

    #[test]
    fn json_is_indented_sorted_and_html_escaped_like_go() {
        let v = Json::Struct(vec![
            ("b".into(), Json::Str("<a&b>".into())),
            (
                "a".into(),
                Json::Map(vec![
                    ("z".into(), Json::Num("1".into())),
                    ("y".into(), Json::Arr(vec![])),
                ]),
            ),
            ("n".into(), Json::Null),
        ]);
        assert_eq!(
            to_json(&v),
            "{\n  \"b\": \"\\u003ca\\u0026b\\u003e\",\n  \"a\": {\n    \"y\": [],\n    \"z\": 1\n  },\n  \"n\": null\n}"
        );
    }
}
