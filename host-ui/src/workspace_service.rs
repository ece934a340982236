//! `pit/workspace`: the workspace's files as a proxy service, for the IDE's explorer and
//! editor: `list`, `read`, `write` (refused when the file changed on disk since it was read),
//! `create`, `rename`, `delete`. Every path is relative to the workspace and resolved through
//! a cap-std directory handle, so `..`, absolute paths and symlinks cannot leave it. A caret
//! reaches it only with a `pit.workspace.<op>` grant.

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde::Deserialize;
use serde_json::json;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;
use symphony_kernel::{CallError, ErrorCode, Principal, Service};

/// Files larger than this are not opened as text.
const MAX_TEXT: u64 = 64 << 20;

#[derive(Debug)]
pub struct WorkspaceService {
    dir: Dir,
}

impl WorkspaceService {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self { dir: Dir::open_ambient_dir(root, ambient_authority())? })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArg {
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArg {
    path: String,
    text: String,
    /// The modification time the client read (ms since the epoch); a different one on disk
    /// means someone else changed the file.
    #[serde(default)]
    expected_mtime_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateArg {
    path: String,
    #[serde(default)]
    dir: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameArg {
    from: String,
    to: String,
}

fn invalid(message: impl Into<String>) -> CallError {
    CallError::new(ErrorCode::InvalidInput, message)
}

/// A workspace-relative path with no way out: no root, no `..`.
pub(crate) fn relative(path: &str) -> Result<PathBuf, CallError> {
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(CallError::denied(format!("`{path}` leaves the workspace"), "pit.workspace"));
            }
        }
    }
    Ok(out)
}

fn io_error(path: &str, e: std::io::Error) -> CallError {
    use std::io::ErrorKind as K;
    let code = match e.kind() {
        K::NotFound => ErrorCode::NotFound,
        K::AlreadyExists | K::InvalidInput | K::InvalidData => ErrorCode::InvalidInput,
        // cap-std reports a symlink or `..` that would escape as PermissionDenied.
        K::PermissionDenied => ErrorCode::Denied,
        _ => ErrorCode::Failed,
    };
    CallError::new(code, format!("`{path}`: {e}"))
}

fn mtime_ms(meta: &cap_std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .map(|t| t.into_std())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn parse<'a, T: Deserialize<'a>>(op: &str, payload: &'a str) -> Result<T, CallError> {
    serde_json::from_str(payload).map_err(|e| invalid(format!("pit/workspace {op}: {e}")))
}

impl WorkspaceService {
    fn list(&self, path: &str) -> Result<serde_json::Value, CallError> {
        let rel = relative(path)?;
        let dir = if rel.as_os_str().is_empty() { self.dir.try_clone() } else { self.dir.open_dir(&rel) };
        let dir = dir.map_err(|e| io_error(path, e))?;
        let mut entries = Vec::new();
        for entry in dir.entries().map_err(|e| io_error(path, e))? {
            let entry = entry.map_err(|e| io_error(path, e))?;
            let meta = entry.metadata().map_err(|e| io_error(path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            entries.push(json!({ "name": name, "dir": meta.is_dir(), "size": meta.len(), "mtime_ms": mtime_ms(&meta) }));
        }
        entries.sort_by(|a, b| b["dir"].as_bool().cmp(&a["dir"].as_bool()).then_with(|| a["name"].as_str().cmp(&b["name"].as_str())));
        Ok(json!({ "path": rel, "entries": entries }))
    }

    fn read(&self, path: &str) -> Result<serde_json::Value, CallError> {
        let rel = relative(path)?;
        let meta = self.dir.metadata(&rel).map_err(|e| io_error(path, e))?;
        if meta.len() > MAX_TEXT {
            return Err(invalid(format!("`{path}` is {} bytes; at most {MAX_TEXT} open as text", meta.len())));
        }
        let bytes = self.dir.read(&rel).map_err(|e| io_error(path, e))?;
        let text = String::from_utf8(bytes).map_err(|_| invalid(format!("`{path}` is not UTF-8 text")))?;
        Ok(json!({ "path": rel, "text": text, "mtime_ms": mtime_ms(&meta), "size": meta.len() }))
    }

    fn write(&self, arg: WriteArg) -> Result<serde_json::Value, CallError> {
        let rel = relative(&arg.path)?;
        if let Some(expected) = arg.expected_mtime_ms {
            match self.dir.metadata(&rel) {
                Ok(meta) if mtime_ms(&meta) != expected => {
                    return Err(CallError::new(
                        ErrorCode::Failed,
                        format!("`{}` changed on disk since it was opened; reload it or save elsewhere", arg.path),
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CallError::new(ErrorCode::Failed, format!("`{}` was deleted on disk since it was opened", arg.path)));
                }
                Err(e) => return Err(io_error(&arg.path, e)),
            }
        }
        // Temp file beside it, then rename: an editor save is never seen half-written.
        let name = rel.file_name().ok_or_else(|| invalid("a file name is needed"))?.to_string_lossy().into_owned();
        let tmp = rel.with_file_name(format!(".{name}.symphony-save"));
        {
            let mut f = self.dir.create(&tmp).map_err(|e| io_error(&arg.path, e))?;
            f.write_all(arg.text.as_bytes()).map_err(|e| io_error(&arg.path, e))?;
            f.sync_all().map_err(|e| io_error(&arg.path, e))?;
        }
        if let Err(e) = self.dir.rename(&tmp, &self.dir, &rel) {
            let _ = self.dir.remove_file(&tmp);
            return Err(io_error(&arg.path, e));
        }
        let meta = self.dir.metadata(&rel).map_err(|e| io_error(&arg.path, e))?;
        Ok(json!({ "path": rel, "mtime_ms": mtime_ms(&meta), "size": meta.len() }))
    }

    fn create(&self, arg: CreateArg) -> Result<serde_json::Value, CallError> {
        let rel = relative(&arg.path)?;
        if arg.dir {
            self.dir.create_dir(&rel).map_err(|e| io_error(&arg.path, e))?;
        } else {
            let mut opts = cap_std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            self.dir.open_with(&rel, &opts).map_err(|e| io_error(&arg.path, e))?;
        }
        Ok(json!({ "path": rel }))
    }

    fn rename(&self, arg: RenameArg) -> Result<serde_json::Value, CallError> {
        let (from, to) = (relative(&arg.from)?, relative(&arg.to)?);
        if self.dir.symlink_metadata(&to).is_ok() {
            return Err(invalid(format!("`{}` already exists", arg.to)));
        }
        self.dir.rename(&from, &self.dir, &to).map_err(|e| io_error(&arg.from, e))?;
        Ok(json!({ "from": from, "to": to }))
    }

    fn delete(&self, path: &str) -> Result<serde_json::Value, CallError> {
        let rel = relative(path)?;
        if rel.as_os_str().is_empty() {
            return Err(invalid("the workspace itself cannot be deleted"));
        }
        let meta = self.dir.symlink_metadata(&rel).map_err(|e| io_error(path, e))?;
        if meta.is_dir() {
            self.dir.remove_dir_all(&rel).map_err(|e| io_error(path, e))?;
        } else {
            self.dir.remove_file(&rel).map_err(|e| io_error(path, e))?;
        }
        Ok(json!({ "path": rel }))
    }
}

impl Service for WorkspaceService {
    fn name(&self) -> &str {
        "workspace"
    }

    fn call(&self, _principal: &Principal, op: &str, payload: &str) -> Result<String, CallError> {
        let payload = if payload.trim().is_empty() { "{}" } else { payload };
        let answer = match op {
            "list" => self.list(&parse::<PathArg>(op, payload)?.path)?,
            "read" => self.read(&parse::<PathArg>(op, payload)?.path)?,
            "write" => self.write(parse(op, payload)?)?,
            "create" => self.create(parse(op, payload)?)?,
            "rename" => self.rename(parse(op, payload)?)?,
            "delete" => self.delete(&parse::<PathArg>(op, payload)?.path)?,
            other => {
                return Err(CallError::new(
                    ErrorCode::NotFound,
                    format!("pit/workspace has no op `{other}`; it has list, read, write, create, rename, delete"),
                ));
            }
        };
        Ok(answer.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn paths_cannot_leave_the_workspace() {
        for bad in ["../secret", "/etc/passwd", "a/../../b", "src/../../x"] {
            assert!(relative(bad).is_err(), "{bad}");
        }
        for (good, rel) in [("", ""), ("src/main.rs", "src/main.rs"), ("./a/./b", "a/b")] {
            assert_eq!(relative(good).ok().as_deref(), Some(std::path::Path::new(rel)), "{good}");
        }
    }
}
