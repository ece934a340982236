//! Capabilities: parsing `fs.read:workspace`-style strings, and deciding what covers what.
//!
//! Everything here is pure: the kernel's enforcement points (preopens, socket checks, the
//! process import, the proxy) ask these functions and act on the answer.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A directory scope a caret may be given: the workspace (or a directory in it), its own data
/// directory, or its own cache directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FsScope {
    /// The workspace, or `sub` inside it (a relative path without `..`).
    Workspace { sub: Option<String> },
    /// The caret's persistent data directory.
    Data,
    /// The caret's cache directory.
    Cache,
}

/// Whether a filesystem grant lets a caret write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FsMode {
    Read,
    Write,
}

/// One capability, as declared in a manifest or granted by a person.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `fs.read:<scope>` / `fs.write:<scope>`.
    Fs { mode: FsMode, scope: FsScope },
    /// `env:<NAME>`, or `env:<PREFIX>*`.
    Env { name: String },
    /// `net.connect:<host>:<port>`; host is an IP, `localhost` or `*`, port a number or `*`.
    NetConnect { host: String, port: Option<u16> },
    /// `net.http:<scheme://host[:port]>`, wildcards allowed in the host.
    NetHttp { pattern: String },
    /// `process.exec:<program> [arg patterns]`: `*` globs within one argument, `**` matches
    /// any remaining arguments.
    ProcessExec { program: String, args: Vec<String> },
    /// `pit.<service>[.<op>]`.
    Pit { service: String, op: Option<String> },
    /// `caret.call:<id>[/<op>]`.
    CaretCall { caret: String, op: Option<String> },
    /// `ui.panel`, `ui.theme`, `ui.notify`.
    Ui { what: UiCapability },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UiCapability {
    Panel,
    Theme,
    Notify,
}

/// Why a capability string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid capability `{text}`: {reason}")]
pub struct CapabilityParseError {
    pub text: String,
    pub reason: String,
}

fn bad(text: &str, reason: impl Into<String>) -> CapabilityParseError {
    CapabilityParseError { text: text.to_owned(), reason: reason.into() }
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn parse_scope(text: &str, scope: &str) -> Result<FsScope, CapabilityParseError> {
    match scope {
        "workspace" => return Ok(FsScope::Workspace { sub: None }),
        "data" => return Ok(FsScope::Data),
        "cache" => return Ok(FsScope::Cache),
        _ => {}
    }
    let Some(sub) = scope.strip_prefix("workspace/") else {
        return Err(bad(text, "scope must be `workspace`, `workspace/<dir>`, `data` or `cache`"));
    };
    let sub = sub.trim_end_matches('/');
    if sub.is_empty() {
        return Ok(FsScope::Workspace { sub: None });
    }
    if sub.contains(['*', '?', '[', '{']) {
        return Err(bad(text, "glob scopes are not supported yet; name a directory"));
    }
    if sub.starts_with('/') || sub.contains('\\') {
        return Err(bad(text, "the directory must be relative to the workspace"));
    }
    if sub.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(bad(text, "the directory may not contain `.`, `..` or empty parts"));
    }
    Ok(FsScope::Workspace { sub: Some(sub.to_owned()) })
}

impl FromStr for Capability {
    type Err = CapabilityParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        if let Some(what) = t.strip_prefix("ui.") {
            let what = match what {
                "panel" => UiCapability::Panel,
                "theme" => UiCapability::Theme,
                "notify" => UiCapability::Notify,
                _ => return Err(bad(text, "ui capabilities are `ui.panel`, `ui.theme`, `ui.notify`")),
            };
            return Ok(Capability::Ui { what });
        }
        if let Some(rest) = t.strip_prefix("pit.") {
            let (service, op) = match rest.split_once('.') {
                Some((s, o)) => (s, Some(o)),
                None => (rest, None),
            };
            if !is_ident(service) || op.is_some_and(|o| !is_ident(o)) {
                return Err(bad(text, "expected `pit.<service>[.<op>]` in lower case"));
            }
            return Ok(Capability::Pit { service: service.to_owned(), op: op.map(str::to_owned) });
        }
        let Some((kind, arg)) = t.split_once(':') else {
            return Err(bad(text, "expected `<kind>:<argument>`, `pit.<service>` or `ui.<what>`"));
        };
        if arg.is_empty() {
            return Err(bad(text, "the argument after `:` is empty"));
        }
        match kind {
            "fs.read" | "fs.write" => {
                let mode = if kind == "fs.read" { FsMode::Read } else { FsMode::Write };
                Ok(Capability::Fs { mode, scope: parse_scope(text, arg)? })
            }
            "env" => {
                let name_ok = arg.char_indices().all(|(i, c)| {
                    c.is_ascii_alphanumeric() || c == '_' || (c == '*' && i == arg.len() - 1)
                });
                if !name_ok {
                    return Err(bad(text, "an env name is letters, digits and `_`, optionally ending in `*`"));
                }
                Ok(Capability::Env { name: arg.to_owned() })
            }
            "net.connect" => {
                let Some((host, port)) = arg.rsplit_once(':') else {
                    return Err(bad(text, "expected `net.connect:<host>:<port>`"));
                };
                let port = match port {
                    "*" => None,
                    p => Some(p.parse::<u16>().map_err(|_| bad(text, "port must be a number or `*`"))?),
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(bad(text, "host is empty"));
                }
                Ok(Capability::NetConnect { host: host.to_ascii_lowercase(), port })
            }
            "net.http" => {
                if !(arg.starts_with("http://") || arg.starts_with("https://")) {
                    return Err(bad(text, "expected `net.http:http(s)://host[:port]`"));
                }
                Ok(Capability::NetHttp { pattern: arg.to_owned() })
            }
            "process.exec" => {
                let mut words = arg.split_whitespace();
                let Some(program) = words.next() else {
                    return Err(bad(text, "name the program"));
                };
                if program.contains('*') {
                    return Err(bad(text, "the program must be named exactly"));
                }
                Ok(Capability::ProcessExec {
                    program: program.to_owned(),
                    args: words.map(str::to_owned).collect(),
                })
            }
            "caret.call" => {
                let (caret, op) = match arg.split_once('/') {
                    Some((c, o)) => (c, Some(o)),
                    None => (arg, None),
                };
                if !is_ident(caret) || op.is_some_and(str::is_empty) {
                    return Err(bad(text, "expected `caret.call:<id>[/<op>]`"));
                }
                Ok(Capability::CaretCall { caret: caret.to_owned(), op: op.map(str::to_owned) })
            }
            _ => Err(bad(
                text,
                "unknown kind; known: fs.read, fs.write, env, net.connect, net.http, process.exec, \
                 caret.call, pit.<service>, ui.<what>",
            )),
        }
    }
}

impl fmt::Display for FsScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsScope::Workspace { sub: None } => f.write_str("workspace"),
            FsScope::Workspace { sub: Some(s) } => write!(f, "workspace/{s}"),
            FsScope::Data => f.write_str("data"),
            FsScope::Cache => f.write_str("cache"),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::Fs { mode: FsMode::Read, scope } => write!(f, "fs.read:{scope}"),
            Capability::Fs { mode: FsMode::Write, scope } => write!(f, "fs.write:{scope}"),
            Capability::Env { name } => write!(f, "env:{name}"),
            Capability::NetConnect { host, port } => {
                let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
                match port {
                    Some(p) => write!(f, "net.connect:{host}:{p}"),
                    None => write!(f, "net.connect:{host}:*"),
                }
            }
            Capability::NetHttp { pattern } => write!(f, "net.http:{pattern}"),
            Capability::ProcessExec { program, args } => {
                write!(f, "process.exec:{program}")?;
                for a in args {
                    write!(f, " {a}")?;
                }
                Ok(())
            }
            Capability::Pit { service, op: None } => write!(f, "pit.{service}"),
            Capability::Pit { service, op: Some(op) } => write!(f, "pit.{service}.{op}"),
            Capability::CaretCall { caret, op: None } => write!(f, "caret.call:{caret}"),
            Capability::CaretCall { caret, op: Some(op) } => write!(f, "caret.call:{caret}/{op}"),
            Capability::Ui { what: UiCapability::Panel } => f.write_str("ui.panel"),
            Capability::Ui { what: UiCapability::Theme } => f.write_str("ui.theme"),
            Capability::Ui { what: UiCapability::Notify } => f.write_str("ui.notify"),
        }
    }
}

impl Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Glob match where `*` stands for any run of characters (including none).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn args_match(patterns: &[String], args: &[String]) -> bool {
    match patterns.split_first() {
        None => args.is_empty(),
        Some((p, _)) if p == "**" => true,
        Some((p, rest)) => match args.split_first() {
            Some((a, args_rest)) => glob_match(p, a) && args_match(rest, args_rest),
            None => false,
        },
    }
}

fn sub_within(outer: &Option<String>, inner: &Option<String>) -> bool {
    match (outer, inner) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => i == o || i.starts_with(&format!("{o}/")),
    }
}

impl Capability {
    /// Whether holding `self` allows everything `other` allows: a grant must be covered by a
    /// request, and a use must be covered by a grant.
    pub fn covers(&self, other: &Capability) -> bool {
        use Capability as C;
        match (self, other) {
            (C::Fs { mode: m1, scope: s1 }, C::Fs { mode: m2, scope: s2 }) => {
                // Write access includes read access to the same scope.
                let mode_ok = m1 == m2 || (*m1 == FsMode::Write && *m2 == FsMode::Read);
                let scope_ok = match (s1, s2) {
                    (FsScope::Workspace { sub: a }, FsScope::Workspace { sub: b }) => sub_within(a, b),
                    (a, b) => a == b,
                };
                mode_ok && scope_ok
            }
            (C::Env { name: a }, C::Env { name: b }) => match a.strip_suffix('*') {
                Some(prefix) => b.starts_with(prefix),
                None => a == b,
            },
            (C::NetConnect { host: h1, port: p1 }, C::NetConnect { host: h2, port: p2 }) => {
                let host_ok = h1 == "*" || glob_match(h1, h2);
                let port_ok = p1.is_none() || p1 == p2;
                host_ok && port_ok
            }
            (C::NetHttp { pattern: a }, C::NetHttp { pattern: b }) => glob_match(a, b),
            (C::ProcessExec { program: p1, args: a1 }, C::ProcessExec { program: p2, args: a2 }) => {
                p1 == p2 && args_match(a1, a2)
            }
            (C::Pit { service: s1, op: o1 }, C::Pit { service: s2, op: o2 }) => {
                s1 == s2 && (o1.is_none() || o1 == o2)
            }
            (C::CaretCall { caret: c1, op: o1 }, C::CaretCall { caret: c2, op: o2 }) => {
                c1 == c2 && (o1.is_none() || o1 == o2)
            }
            (C::Ui { what: a }, C::Ui { what: b }) => a == b,
            _ => false,
        }
    }

    /// Wildcard grants deserve a second look in an audit.
    pub fn is_wildcard(&self) -> bool {
        match self {
            Capability::Env { name } => name.ends_with('*'),
            Capability::NetConnect { host, port } => host.contains('*') || port.is_none(),
            Capability::NetHttp { pattern } => pattern.contains('*'),
            Capability::ProcessExec { args, .. } => args.iter().any(|a| a.contains('*')),
            Capability::Pit { op, .. } | Capability::CaretCall { op, .. } => op.is_none(),
            Capability::Fs { .. } | Capability::Ui { .. } => false,
        }
    }

    /// The family a capability belongs to, as named in audit records.
    pub fn family(&self) -> &'static str {
        match self {
            Capability::Fs { .. } => "fs",
            Capability::Env { .. } => "env",
            Capability::NetConnect { .. } | Capability::NetHttp { .. } => "net",
            Capability::ProcessExec { .. } => "process",
            Capability::Pit { .. } => "pit",
            Capability::CaretCall { .. } => "caret",
            Capability::Ui { .. } => "ui",
        }
    }
}

/// A set of capabilities held by one principal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapabilitySet(Vec<Capability>);

impl CapabilitySet {
    pub fn new(caps: impl IntoIterator<Item = Capability>) -> Self {
        let mut v: Vec<Capability> = caps.into_iter().collect();
        v.sort();
        v.dedup();
        Self(v)
    }

    /// Whether any held capability covers `wanted`.
    pub fn allows(&self, wanted: &Capability) -> bool {
        self.0.iter().any(|c| c.covers(wanted))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Capability> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(s: &str) -> Capability {
        match s.parse() {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn round_trips_every_form() {
        for text in [
            "fs.read:workspace",
            "fs.write:workspace/src/gen",
            "fs.read:data",
            "fs.write:cache",
            "env:HOME",
            "env:SYMPHONY_*",
            "net.connect:127.0.0.1:8080",
            "net.connect:*:*",
            "net.connect:[::1]:443",
            "net.http:https://*.example.com",
            "process.exec:git status **",
            "pit.artifacts",
            "pit.artifacts.get",
            "caret.call:text-tools",
            "caret.call:text-tools/grep",
            "ui.panel",
        ] {
            assert_eq!(cap(text).to_string(), text);
        }
    }

    #[test]
    fn rejects_malformed_with_reason() {
        for (text, reason) in [
            ("fs.read:/etc", "scope must be"),
            ("fs.read:workspace/../x", "may not contain"),
            ("fs.read:workspace/*.rs", "glob scopes"),
            ("env:A-B", "env name"),
            ("net.connect:host", "expected `net.connect"),
            ("net.connect:h:99999", "port must be"),
            ("process.exec:*", "named exactly"),
            ("caret.call:Bad", "expected `caret.call"),
            ("sockets:all", "unknown kind"),
            ("fs.read:", "empty"),
            ("ui.window", "ui capabilities"),
        ] {
            let err = text.parse::<Capability>().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn coverage_narrows_only() {
        let cases = [
            ("fs.read:workspace", "fs.read:workspace/src", true),
            ("fs.read:workspace/src", "fs.read:workspace", false),
            ("fs.read:workspace/src", "fs.read:workspace/srcx", false),
            ("fs.write:workspace", "fs.read:workspace/a", true),
            ("fs.read:workspace", "fs.write:workspace", false),
            ("fs.read:data", "fs.read:cache", false),
            ("env:SYM_*", "env:SYM_TOKEN", true),
            ("env:SYM_TOKEN", "env:SYM_*", false),
            ("net.connect:127.0.0.1:*", "net.connect:127.0.0.1:80", true),
            ("net.connect:127.0.0.1:80", "net.connect:127.0.0.1:*", false),
            ("net.connect:*:443", "net.connect:10.0.0.1:443", true),
            ("process.exec:git **", "process.exec:git status -s", true),
            ("process.exec:git status *", "process.exec:git status -s", true),
            ("process.exec:git status *", "process.exec:git push -f", false),
            ("process.exec:git status", "process.exec:git status -s", false),
            ("process.exec:git *", "process.exec:gitx a", false),
            ("pit.artifacts", "pit.artifacts.get", true),
            ("pit.artifacts.get", "pit.artifacts.put", false),
            ("caret.call:a", "caret.call:a/x", true),
            ("caret.call:a/x", "caret.call:a", false),
            ("caret.call:a", "caret.call:b/x", false),
            ("ui.panel", "ui.theme", false),
        ];
        for (outer, inner, expected) in cases {
            assert_eq!(cap(outer).covers(&cap(inner)), expected, "{outer} covers {inner}");
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*c", "abbbc"));
        assert!(!glob_match("a*c", "abbb"));
        assert!(glob_match("*.rs", "main.rs"));
        assert!(!glob_match("--*", "-x"));
    }
}
