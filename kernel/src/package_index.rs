//! A registry of packages in a directory, in the spirit of the crates.io index:
//! `index/<id>.jsonl` holds one line per published version (hash, signer, dependencies,
//! yanked), and `packages/<id>/<id>-<version>.caret` the signed packages. Published versions
//! are immutable; yanking hides a version from new resolutions.

use crate::error::KernelError;
use crate::fsutil::write_atomic;
use crate::package::{self, PackageError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One published version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub id: String,
    pub version: semver::Version,
    pub content_hash: String,
    pub key: String,
    pub signer: String,
    #[serde(default)]
    pub dependencies: BTreeMap<String, semver::VersionReq>,
    #[serde(default)]
    pub yanked: bool,
    /// The package, relative to the registry root.
    pub file: PathBuf,
}

/// Why publishing, yanking or resolving failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("{id} {version} is already published; versions are immutable, publish a new one")]
    AlreadyPublished { id: String, version: semver::Version },
    #[error("the registry accepts signed packages only: sign {} with `carets sign`", path.display())]
    Unsigned { path: PathBuf },
    #[error("no caret `{0}` in the registry")]
    UnknownCaret(String),
    #[error("{id} has no version {version} in the registry")]
    UnknownVersion { id: String, version: String },
    #[error("{0}")]
    Unsatisfiable(String),
}

/// A registry directory.
#[derive(Clone, Debug)]
pub struct PackageIndex {
    root: PathBuf,
}

impl PackageIndex {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_file(&self, id: &str) -> PathBuf {
        self.root.join("index").join(format!("{id}.jsonl"))
    }

    /// Every version of `id`, oldest first.
    pub fn versions(&self, id: &str) -> Result<Vec<IndexEntry>, IndexError> {
        let path = self.index_file(id);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(IndexError::UnknownCaret(id.to_owned())),
            Err(e) => return Err(KernelError::io(&path, e).into()),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| {
                    IndexError::Kernel(KernelError::Corrupt { path: path.clone(), what: "registry index", line: i + 1, reason: e.to_string() })
                })
            })
            .collect()
    }

    fn write_versions(&self, id: &str, entries: &[IndexEntry]) -> Result<(), IndexError> {
        let path = self.index_file(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| KernelError::io(dir, e))?;
        }
        let mut text = String::new();
        for e in entries {
            text.push_str(&serde_json::to_string(e).map_err(|e| KernelError::io(&path, std::io::Error::other(e)))?);
            text.push('\n');
        }
        write_atomic(&path, text.as_bytes()).map_err(|e| KernelError::io(&path, e))?;
        Ok(())
    }

    /// Publishes a signed package; a version, once published, never changes.
    pub fn publish(&self, package_path: &Path) -> Result<IndexEntry, IndexError> {
        let verified = package::open(package_path)?;
        self.publish_verified(package_path, &verified)
    }

    /// `publish` for a package the caller has already opened and verified (to report the
    /// steps separately); `verified` must come from `package::open(package_path)`.
    pub fn publish_verified(&self, package_path: &Path, verified: &package::Verified) -> Result<IndexEntry, IndexError> {
        let Some((key, signer)) = verified.signed_by.clone() else {
            return Err(IndexError::Unsigned { path: package_path.to_path_buf() });
        };
        let m = &verified.manifest;
        let mut entries = match self.versions(&m.id) {
            Ok(v) => v,
            Err(IndexError::UnknownCaret(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        if entries.iter().any(|e| e.version == m.version) {
            return Err(IndexError::AlreadyPublished { id: m.id.clone(), version: m.version.clone() });
        }
        let file = PathBuf::from("packages").join(&m.id).join(format!("{}-{}.caret", m.id, m.version));
        let dest = self.root.join(&file);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| KernelError::io(dir, e))?;
        }
        let bytes = std::fs::read(package_path).map_err(|e| KernelError::io(package_path, e))?;
        // The package first, then the index line: an interrupted publish leaves at most an
        // unlisted file, never a listed version without its package.
        write_atomic(&dest, &bytes).map_err(|e| KernelError::io(&dest, e))?;
        let entry = IndexEntry {
            id: m.id.clone(),
            version: m.version.clone(),
            content_hash: verified.content_hash.clone(),
            key,
            signer,
            dependencies: m.dependencies.clone(),
            yanked: false,
            file,
        };
        entries.push(entry.clone());
        self.write_versions(&m.id, &entries)?;
        Ok(entry)
    }

    /// Yanks (or, with `yanked = false`, restores) a version.
    pub fn set_yanked(&self, id: &str, version: &str, yanked: bool) -> Result<IndexEntry, IndexError> {
        let mut entries = self.versions(id)?;
        let unknown = || IndexError::UnknownVersion { id: id.to_owned(), version: version.to_owned() };
        let wanted = semver::Version::parse(version).map_err(|_| unknown())?;
        let entry = entries.iter_mut().find(|e| e.version == wanted).ok_or_else(unknown)?;
        entry.yanked = yanked;
        let out = entry.clone();
        self.write_versions(id, &entries)?;
        Ok(out)
    }

    /// The path of a published package.
    pub fn package_path(&self, entry: &IndexEntry) -> PathBuf {
        self.root.join(&entry.file)
    }

    /// Chooses a version of `id` matching `req` and of every caret it depends on, transitively:
    /// the highest non-yanked version meeting every requirement placed on it, unless an
    /// installed version already does. Returns what to install, dependencies first.
    pub fn resolve(
        &self,
        id: &str,
        req: &semver::VersionReq,
        installed: &HashMap<String, semver::Version>,
    ) -> Result<Vec<IndexEntry>, IndexError> {
        // Requirements on each caret, with who placed them.
        let mut wants: BTreeMap<String, Vec<(semver::VersionReq, String)>> = BTreeMap::new();
        wants.entry(id.to_owned()).or_default().push((req.clone(), "you".to_owned()));
        let mut picks: BTreeMap<String, Option<IndexEntry>> = BTreeMap::new();
        // Each round re-picks against every requirement known so far; requirements only grow,
        // so picks settle (bounded for safety).
        for _ in 0..64 {
            let mut changed = false;
            let ids: Vec<String> = wants.keys().cloned().collect();
            for caret in ids {
                let reqs = wants.get(&caret).cloned().unwrap_or_default();
                let satisfies = |v: &semver::Version| reqs.iter().all(|(r, _)| r.matches(v));
                let pick = if installed.get(&caret).is_some_and(|v| satisfies(v) && caret != id) {
                    None
                } else {
                    let versions = self.versions(&caret)?;
                    let best = versions.iter().filter(|e| !e.yanked && satisfies(&e.version)).max_by(|a, b| a.version.cmp(&b.version));
                    match best {
                        Some(e) => Some(e.clone()),
                        None => return Err(IndexError::Unsatisfiable(explain(&caret, &reqs, &versions))),
                    }
                };
                if picks.get(&caret) != Some(&pick) {
                    changed = true;
                    if let Some(e) = &pick {
                        for (dep, dep_req) in &e.dependencies {
                            let by = format!("{} {}", e.id, e.version);
                            let list = wants.entry(dep.clone()).or_default();
                            if !list.iter().any(|(r, b)| r == dep_req && *b == by) {
                                list.push((dep_req.clone(), by));
                            }
                        }
                    }
                    picks.insert(caret, pick);
                }
            }
            if !changed {
                break;
            }
        }
        // Dependencies first.
        let mut order = Vec::new();
        let mut done = std::collections::HashSet::new();
        fn visit(caret: &str, picks: &BTreeMap<String, Option<IndexEntry>>, done: &mut std::collections::HashSet<String>, order: &mut Vec<IndexEntry>) {
            if !done.insert(caret.to_owned()) {
                return;
            }
            if let Some(Some(e)) = picks.get(caret) {
                for dep in e.dependencies.keys() {
                    visit(dep, picks, done, order);
                }
                order.push(e.clone());
            }
        }
        visit(id, &picks, &mut done, &mut order);
        Ok(order)
    }
}

fn explain(caret: &str, reqs: &[(semver::VersionReq, String)], versions: &[IndexEntry]) -> String {
    let wanted: Vec<String> = reqs.iter().map(|(r, by)| format!("{r} (required by {by})")).collect();
    let available: Vec<String> = versions
        .iter()
        .map(|e| if e.yanked { format!("{} (yanked)", e.version) } else { e.version.to_string() })
        .collect();
    format!(
        "no version of `{caret}` satisfies {}; available: {}",
        wanted.join(" and "),
        if available.is_empty() { "none".to_owned() } else { available.join(", ") }
    )
}
