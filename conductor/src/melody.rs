//! The melody file format and its validation. Every error carries the file and line.
//!
//! ```toml
//! [melody]
//! name = "workspace-report"
//!
//! [[node]]
//! id = "todos"
//! target = "caret/text-tools"
//! op = "todos"
//!
//! [[node]]
//! id = "count"
//! target = "caret/text-tools"
//! op = "stats"
//! input = { text = "${todos}" }   # another node's output; `${todos.0.path}` picks a field
//! retries = 1
//! timeout = "10s"
//! after = ["todos"]               # ordering without data
//! optional = true                 # Maestro may skip it (only if no node needs its output)
//!
//! [[node.alternatives]]           # other ways to do the same job, for Maestro to choose from
//! target = "caret/other-tools"
//! op = "stats"                    # `input` defaults to the node's own
//! ```

use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use symphony_dag::{Dag, Dep, NodeSpec, ValidationError};
use toml::Spanned;

/// One node of a validated melody.
#[derive(Clone, Debug, PartialEq)]
pub struct MelodyNode {
    pub id: String,
    /// `caret/<id>` or `pit/<service>`.
    pub target: String,
    pub op: String,
    /// The input with `${…}` references still in it.
    pub input: serde_json::Value,
    pub retries: u32,
    pub timeout: Option<Duration>,
    pub after: Vec<String>,
    /// Nodes whose outputs the input (or an alternative's) reads.
    pub reads: Vec<String>,
    /// Other ways to do this node's job; Maestro mode may choose one (first, or to retry).
    pub alternatives: Vec<Alternative>,
    /// Maestro may skip the node — and only when no other node needs its output.
    pub optional: bool,
    pub line: usize,
}

/// Another target and op for a node's job (with its own input, or the node's).
#[derive(Clone, Debug, PartialEq)]
pub struct Alternative {
    pub target: String,
    pub op: String,
    pub input: serde_json::Value,
}

impl MelodyNode {
    /// The ways to run the node: its own (0), then each alternative, as `(target, op, input)`.
    pub fn arms(&self) -> Vec<(&str, &str, &serde_json::Value)> {
        std::iter::once((self.target.as_str(), self.op.as_str(), &self.input))
            .chain(self.alternatives.iter().map(|a| (a.target.as_str(), a.op.as_str(), &a.input)))
            .collect()
    }
}

/// A validated melody and its DAG.
#[derive(Clone, Debug)]
pub struct Melody {
    pub name: String,
    pub description: String,
    pub nodes: Vec<MelodyNode>,
    pub dag: Dag,
    pub file: PathBuf,
}

/// One problem in a melody file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// Everything wrong with a melody file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct MelodyError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for MelodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}: {}", self.file.display(), p.line, p.message)?;
        }
        Ok(())
    }
}

/// Checks a target and op against what is actually there (installed carets, running services).
pub trait TargetCheck {
    fn check(&self, target: &str, op: &str) -> Result<(), String>;
}

/// Checks targets against a kernel: the caret is installed and offers the op (`@`-ops are
/// world exports and exist for every caret of the right kind). Pit targets are checked when
/// called, since services register at run time.
#[derive(Debug)]
pub struct InstalledTargets<'a>(pub &'a symphony_kernel::Kernel);

impl TargetCheck for InstalledTargets<'_> {
    fn check(&self, target: &str, op: &str) -> Result<(), String> {
        let Some(id) = target.strip_prefix("caret/") else { return Ok(()) };
        self.0.info(id).map_err(|e| e.to_string())?;
        if op.starts_with('@') {
            return Ok(());
        }
        let ops = self
            .0
            .invoke(&symphony_kernel::Principal::User, target, "@describe", "")
            .map_err(|e| e.to_string())?;
        let ops: serde_json::Value = serde_json::from_str(&ops).map_err(|e| e.to_string())?;
        let names: Vec<&str> = ops.as_array().into_iter().flatten().filter_map(|o| o["name"].as_str()).collect();
        if names.contains(&op) {
            Ok(())
        } else {
            Err(format!("{target} has no op `{op}` (it has: {})", names.join(", ")))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMelody {
    melody: Option<RawHeader>,
    #[serde(default)]
    node: Vec<Spanned<RawNode>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Option<String>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<String>,
    target: Spanned<String>,
    op: Spanned<String>,
    #[serde(default)]
    input: Option<Spanned<toml::Value>>,
    #[serde(default)]
    retries: Option<Spanned<i64>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    alternatives: Vec<Spanned<RawAlternative>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlternative {
    target: String,
    op: String,
    #[serde(default)]
    input: Option<toml::Value>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn to_json(value: toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(s) => serde_json::Value::String(s),
        toml::Value::Integer(i) => serde_json::Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        toml::Value::Boolean(b) => serde_json::Value::Bool(b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(t.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
    }
}

/// The node ids a `${…}` reference in `text` names (the part before the first `.`).
pub(crate) fn references(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let reference = &after[..end];
        let node = reference.split('.').next().unwrap_or_default();
        out.push((node.to_owned(), reference.to_owned()));
        rest = &after[end + 1..];
    }
    out
}

fn collect_reads(value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::String(s) => out.extend(references(s)),
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_reads(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| collect_reads(v, out)),
        _ => {}
    }
}

fn is_node_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Melody {
    pub fn load(path: &Path, targets: Option<&dyn TargetCheck>) -> Result<Self, MelodyError> {
        let text = std::fs::read_to_string(path).map_err(|e| MelodyError {
            file: path.to_path_buf(),
            problems: vec![Problem { line: 0, message: format!("cannot read: {e}") }],
        })?;
        Self::parse(&text, path, targets)
    }

    /// Parses and validates melody `text` (`file` names it in errors). With `targets`, each
    /// node's target and op are checked against what is installed.
    pub fn parse(text: &str, file: &Path, targets: Option<&dyn TargetCheck>) -> Result<Self, MelodyError> {
        let fail = |problems: Vec<Problem>| MelodyError { file: file.to_path_buf(), problems };
        let raw: RawMelody = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            fail(vec![Problem { line, message: e.message().trim().to_owned() }])
        })?;
        let mut problems = Vec::new();
        if raw.node.is_empty() {
            problems.push(Problem { line: 1, message: "a melody needs at least one [[node]]".to_owned() });
        }
        let mut nodes = Vec::new();
        // Per node, the line of each alternative (for target checks below).
        let mut alt_lines: Vec<Vec<usize>> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for spanned in raw.node {
            let line = line_of(text, spanned.span().start);
            let raw = spanned.into_inner();
            let at = |s: &std::ops::Range<usize>| line_of(text, s.start);
            let id = raw.id.get_ref().clone();
            if !is_node_id(&id) {
                problems.push(Problem { line: at(&raw.id.span()), message: format!("node id `{id}` may hold only letters, digits, `-` and `_`") });
            }
            if let Some(first) = seen.insert(id.clone(), at(&raw.id.span())) {
                problems.push(Problem { line: at(&raw.id.span()), message: format!("node id `{id}` is already used on line {first}") });
            }
            let target = raw.target.get_ref().clone();
            match symphony_kernel::Target::parse(&target) {
                Ok(_) => {}
                Err(_) => problems.push(Problem {
                    line: at(&raw.target.span()),
                    message: format!("node `{id}`: target `{target}` is not `caret/<id>` or `pit/<service>`"),
                }),
            }
            let op = raw.op.get_ref().clone();
            if op.trim().is_empty() {
                problems.push(Problem { line: at(&raw.op.span()), message: format!("node `{id}`: op is empty") });
            }
            let retries = match &raw.retries {
                None => 0,
                Some(r) => match u32::try_from(*r.get_ref()) {
                    Ok(n) if n <= 100 => n,
                    _ => {
                        problems.push(Problem { line: at(&r.span()), message: format!("node `{id}`: retries must be from 0 to 100") });
                        0
                    }
                },
            };
            let timeout = match &raw.timeout {
                None => None,
                Some(t) => match humantime::parse_duration(t.get_ref()) {
                    Ok(d) if !d.is_zero() => Some(d),
                    _ => {
                        problems.push(Problem {
                            line: at(&t.span()),
                            message: format!("node `{id}`: timeout `{}` is not a duration like `10s` or `500ms`", t.get_ref()),
                        });
                        None
                    }
                },
            };
            let input_line = raw.input.as_ref().map_or(line, |i| at(&i.span()));
            let input = raw.input.map_or(serde_json::Value::Object(Default::default()), |i| to_json(i.into_inner()));
            let mut alternatives = Vec::new();
            for alt in raw.alternatives {
                let alt_line = at(&alt.span());
                let alt = alt.into_inner();
                if symphony_kernel::Target::parse(&alt.target).is_err() {
                    problems.push(Problem {
                        line: alt_line,
                        message: format!("node `{id}`: alternative target `{}` is not `caret/<id>` or `pit/<service>`", alt.target),
                    });
                }
                if alt.op.trim().is_empty() {
                    problems.push(Problem { line: alt_line, message: format!("node `{id}`: an alternative's op is empty") });
                }
                let alt_input = alt.input.map_or_else(|| input.clone(), to_json);
                alternatives.push((alt_line, Alternative { target: alt.target, op: alt.op, input: alt_input }));
            }
            let mut refs = Vec::new();
            collect_reads(&input, &mut refs);
            for (_, alt) in &alternatives {
                collect_reads(&alt.input, &mut refs);
            }
            let mut reads = BTreeSet::new();
            for (node, reference) in refs {
                if node.is_empty() {
                    problems.push(Problem { line: input_line, message: format!("node `{id}`: empty reference `${{{reference}}}`") });
                } else {
                    reads.insert(node);
                }
            }
            nodes.push(MelodyNode {
                id,
                target,
                op,
                input,
                retries,
                timeout,
                after: raw.after.iter().map(|a| a.get_ref().clone()).collect(),
                reads: reads.into_iter().collect(),
                alternatives: alternatives.iter().map(|(_, a)| a.clone()).collect(),
                optional: raw.optional,
                line,
            });
            alt_lines.push(alternatives.into_iter().map(|(l, _)| l).collect::<Vec<_>>());
            // Line numbers for `after` entries are reported through the node's line below.
            let _ = input_line;
        }
        if let Some(check) = targets {
            for (n, lines) in nodes.iter().zip(&alt_lines) {
                if let Err(message) = check.check(&n.target, &n.op) {
                    problems.push(Problem { line: n.line, message: format!("node `{}`: {message}", n.id) });
                }
                for (alt, line) in n.alternatives.iter().zip(lines) {
                    if let Err(message) = check.check(&alt.target, &alt.op) {
                        problems.push(Problem { line: *line, message: format!("node `{}`, alternative: {message}", n.id) });
                    }
                }
            }
        }

        let specs: Vec<NodeSpec> = nodes
            .iter()
            .map(|n| NodeSpec {
                id: n.id.clone(),
                deps: n
                    .reads
                    .iter()
                    .map(|r| Dep::Input { node: r.clone(), input: "input".to_owned() })
                    .chain(n.after.iter().map(|a| Dep::After(a.clone())))
                    .collect(),
                estimate: None,
                retries: n.retries,
                timeout: n.timeout,
            })
            .collect();
        let line_of_node: HashMap<&str, usize> = nodes.iter().map(|n| (n.id.as_str(), n.line)).collect();
        let dag = match Dag::build(specs) {
            Ok(dag) => Some(dag),
            Err(errors) => {
                for e in errors.0 {
                    let (line, message) = match &e {
                        // Already reported with its own line above.
                        ValidationError::DuplicateId { .. } => continue,
                        ValidationError::UnknownDependency { node, dep: Dep::Input { node: missing, .. } } => (
                            line_of_node.get(node.as_str()).copied().unwrap_or(1),
                            format!("node `{node}`: input reads `${{{missing}}}`, but there is no node `{missing}`"),
                        ),
                        ValidationError::UnknownDependency { node, dep } => (
                            line_of_node.get(node.as_str()).copied().unwrap_or(1),
                            format!("node `{node}`: runs after `{}`, but there is no such node", dep.node()),
                        ),
                        ValidationError::Cycle { nodes: cycle } => (
                            cycle.first().and_then(|n| line_of_node.get(n.as_str())).copied().unwrap_or(1),
                            e.to_string(),
                        ),
                    };
                    problems.push(Problem { line, message });
                }
                None
            }
        };
        problems.sort_by_key(|p| p.line);
        match dag {
            Some(dag) if problems.is_empty() => {
                let header = raw.melody.unwrap_or(RawHeader { name: None, description: String::new() });
                let name = header.name.unwrap_or_else(|| {
                    file.file_stem().map_or_else(|| "melody".to_owned(), |s| s.to_string_lossy().into_owned())
                });
                Ok(Melody { name, description: header.description, nodes, dag, file: file.to_path_buf() })
            }
            _ => Err(fail(problems)),
        }
    }
}
