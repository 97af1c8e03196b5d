//! Command-line flags as Go's `flag` package reads them, which HashiCorp's commands
//! use: `-name=value`, `-name value`, `--name=value` and `--name value` all work; a
//! boolean takes `-name` or `-name=false` (never a separate word); flags stop at the
//! first argument that is not one, or after `--`; a repeatable flag collects every
//! value.

use std::collections::HashMap;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `-name` or `-name=true|false`.
    Bool,
    /// `-name value` or `-name=value`; the last one wins.
    Value,
    /// Like [`Kind::Value`], every occurrence kept (`-tag a=b -tag c=d`).
    Repeated,
}

/// The flags a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The name, without dashes.
    pub name: &'static str,
    /// How it takes its value.
    pub kind: Kind,
}

/// What was given.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    values: HashMap<&'static str, Vec<String>>,
    /// The arguments after the flags.
    pub args: Vec<String>,
    /// `-h`, `-help` or `--help` was given.
    pub help: bool,
}

impl Parsed {
    /// The last value of a flag.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value of a repeated flag.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// A boolean flag: `default` when absent.
    pub fn bool(&self, name: &str, default: bool) -> bool {
        match self.value(name) {
            None => default,
            Some(v) => v == "true",
        }
    }
}

/// Go's `strconv.ParseBool` spellings.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` against `flags`. Errors read like Go's: `flag provided but not
/// defined: -x`, `flag needs an argument: -x`, `invalid boolean value "x" for -x`.
pub fn parse(args: &[String], flags: &[Flag]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        let body = a.trim_start_matches('-');
        if a.starts_with("---") || body.is_empty() {
            return Err(format!("bad flag syntax: {a}"));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        if name == "h" || name == "help" {
            out.help = true;
            i += 1;
            continue;
        }
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            return Err(format!("flag provided but not defined: -{name}"));
        };
        let value = match flag.kind {
            Kind::Bool => match inline {
                None => "true".to_owned(),
                Some(v) => match parse_bool(&v) {
                    Some(b) => b.to_string(),
                    None => {
                        return Err(format!(
                            "invalid boolean value {v:?} for -{name}: parse error"
                        ));
                    }
                },
            },
            Kind::Value | Kind::Repeated => match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    match args.get(i) {
                        Some(v) => v.clone(),
                        None => return Err(format!("flag needs an argument: -{name}")),
                    }
                }
            },
        };
        out.values.entry(flag.name).or_default().push(value);
        i += 1;
    }
    out.args = args[i.min(args.len())..].to_vec();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag {
            name: "detailed",
            kind: Kind::Bool,
        },
        Flag {
            name: "format",
            kind: Kind::Value,
        },
        Flag {
            name: "tag",
            kind: Kind::Repeated,
        },
    ];

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn go_and_gnu_spellings_both_work() {
        let p = parse(
            &args("-detailed --format json -tag a=b --tag=c=d x y"),
            FLAGS,
        )
        .unwrap();
        assert!(p.bool("detailed", false));
        assert_eq!(p.value("format"), Some("json"));
        assert_eq!(p.values("tag"), vec!["a=b", "c=d"]);
        assert_eq!(p.args, vec!["x", "y"]);
        let p = parse(&args("-format=text -detailed=false"), FLAGS).unwrap();
        assert_eq!(p.value("format"), Some("text"));
        assert!(!p.bool("detailed", true));
    }

    #[test]
    fn errors_name_the_flag_as_go_does() {
        assert_eq!(
            parse(&args("-bogus"), FLAGS).unwrap_err(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            parse(&args("-format"), FLAGS).unwrap_err(),
            "flag needs an argument: -format"
        );
        assert!(parse(&args("-detailed=maybe"), FLAGS).is_err());
    }

    #[test]
    fn flags_stop_at_the_first_argument() {
        let p = parse(&args("name -detailed"), FLAGS).unwrap();
        assert_eq!(p.args, vec!["name", "-detailed"]);
        let p = parse(&args("-- -detailed"), FLAGS).unwrap();
        assert_eq!(p.args, vec!["-detailed"]);
    }
}
