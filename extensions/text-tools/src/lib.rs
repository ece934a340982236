//! Operator over workspace text: statistics, search, TODO listing, plus small ops for benchmarks.
//!
//! The workspace is visible at `/workspace` only when `fs.read:workspace` is granted.

use serde::{Deserialize, Serialize};
use symphony_caret::{Caret, Error, OpInfo, Operator};
use std::path::{Path, PathBuf};

const WORKSPACE: &str = "/workspace";
/// Files larger than this are skipped by search: they are rarely text worth scanning.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Default)]
struct TextTools {
    /// Counts `count` calls; carried across hot-swaps through save/restore-state.
    counter: u64,
}

#[derive(Serialize, Default, PartialEq, Debug)]
struct Stats {
    lines: usize,
    words: usize,
    chars: usize,
    bytes: usize,
}

#[derive(Deserialize)]
struct StatsInput {
    path: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct GrepInput {
    pattern: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    ignore_case: bool,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    200
}

#[derive(Serialize)]
struct Hit {
    path: String,
    line: usize,
    text: String,
}

fn stats_of(text: &str) -> Stats {
    Stats {
        lines: text.lines().count(),
        words: text.split_whitespace().count(),
        chars: text.chars().count(),
        bytes: text.len(),
    }
}

/// Maps a workspace-relative path onto the guest mount, refusing nothing itself:
/// the kernel's preopen is what keeps the caret inside the workspace.
fn in_workspace(rel: &str) -> PathBuf {
    Path::new(WORKSPACE).join(rel.trim_start_matches('/'))
}

fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::failed(format!("cannot read {}: {e}", path.display())))
}

/// Walks `root` depth-first, skipping hidden entries and build output. Opens rather than
/// stats, so a missing grant shows up as the kernel's denial.
fn walk(root: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let listing = match std::fs::read_dir(root) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory || root.is_file() => {
            out.push(root.to_path_buf());
            return Ok(());
        }
        Err(e) => return Err(Error::failed(format!("cannot list {}: {e}", root.display()))),
    };
    let mut entries: Vec<_> = listing.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, out)?,
            Ok(t) if t.is_file() => {
                if entry.metadata().map(|m| m.len() <= MAX_FILE_BYTES).unwrap_or(false) {
                    out.push(path);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn display_path(path: &Path) -> String {
    path.strip_prefix(WORKSPACE).unwrap_or(path).to_string_lossy().into_owned()
}

fn search(
    root: &Path,
    mut matches: impl FnMut(&str) -> bool,
    limit: usize,
) -> Result<Vec<Hit>, Error> {
    let mut files = Vec::new();
    walk(root, &mut files)?;
    let mut hits = Vec::new();
    for (done, file) in files.iter().enumerate() {
        symphony_caret::host::progress(done as u64, files.len() as u64, "scanning");
        // Binary or non-UTF-8 files are not text to search.
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        for (i, line) in text.lines().enumerate() {
            if matches(line) {
                hits.push(Hit { path: display_path(file), line: i + 1, text: line.trim().to_owned() });
                if hits.len() >= limit {
                    return Ok(hits);
                }
            }
        }
    }
    Ok(hits)
}

fn parse<'a, T: Deserialize<'a>>(input: &'a str) -> Result<T, Error> {
    serde_json::from_str(input).map_err(|e| Error::invalid_input(format!("input JSON: {e}")))
}

fn to_json(value: &impl Serialize) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::failed(e.to_string()))
}

impl Caret for TextTools {
    fn save_state(&mut self) -> Vec<u8> {
        self.counter.to_le_bytes().to_vec()
    }
    fn restore_state(&mut self, state: Vec<u8>) -> Result<(), Error> {
        let bytes: [u8; 8] = state
            .as_slice()
            .try_into()
            .map_err(|_| Error::invalid_input(format!("state is {} bytes, want 8", state.len())))?;
        self.counter = u64::from_le_bytes(bytes);
        Ok(())
    }
}

impl Operator for TextTools {
    fn describe(&self) -> Vec<OpInfo> {
        vec![
            OpInfo::new("stats", r#"lines/words/chars/bytes of {"path"} in the workspace or of {"text"}"#),
            OpInfo::new("grep", r#"lines containing {"pattern"} under {"path"?} ({"ignore_case"?, "limit"?})"#),
            OpInfo::new("todos", r#"TODO/FIXME/XXX notes under {"path"?}"#),
            OpInfo::new("upper", "upper-cases the raw input text"),
            OpInfo::new("count", "increments and returns a counter kept across hot-swaps"),
        ]
    }

    fn call(&mut self, op: &str, input: &str) -> Result<String, Error> {
        match op {
            "stats" => {
                let req: StatsInput = parse(input)?;
                let text = match (req.path, req.text) {
                    (_, Some(text)) => text,
                    (Some(path), None) => read_text(&in_workspace(&path))?,
                    (None, None) => return Err(Error::invalid_input("give `path` or `text`")),
                };
                to_json(&stats_of(&text))
            }
            "grep" => {
                let req: GrepInput = parse(input)?;
                if req.pattern.is_empty() {
                    return Err(Error::invalid_input("`pattern` is empty"));
                }
                let root = in_workspace(req.path.as_deref().unwrap_or(""));
                let hits = if req.ignore_case {
                    let needle = req.pattern.to_lowercase();
                    search(&root, |l| l.to_lowercase().contains(&needle), req.limit)?
                } else {
                    search(&root, |l| l.contains(&req.pattern), req.limit)?
                };
                to_json(&hits)
            }
            "todos" => {
                let path = if input.trim().is_empty() {
                    None
                } else {
                    parse::<serde_json::Value>(input)?
                        .get("path")
                        .and_then(|p| p.as_str())
                        .map(str::to_owned)
                };
                let root = in_workspace(path.as_deref().unwrap_or(""));
                let hits = search(
                    &root,
                    |l| ["TODO", "FIXME", "XXX"].iter().any(|tag| l.contains(tag)),
                    1000,
                )?;
                to_json(&hits)
            }
            "upper" => Ok(input.to_uppercase()),
            "count" => {
                self.counter += 1;
                Ok(self.counter.to_string())
            }
            other => Err(Error::not_found(format!("text-tools has no op `{other}`"))),
        }
    }
}

symphony_caret::export!(TextTools);
