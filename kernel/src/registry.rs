//! The caret registry on disk: installed carets (manifest + component), and the grants a person
//! gave them. Every write is atomic; a corrupt file is reported and never overwritten.

use crate::audit::now_rfc3339;
use crate::capability::{Capability, CapabilitySet};
use crate::error::KernelError;
use crate::fsutil::{sync_dir, write_atomic};
use crate::inspect::{self, ComponentInfo, World};
use crate::manifest::{Manifest, MANIFEST_FILE};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where a Symphony home keeps things.
#[derive(Clone, Debug)]
pub struct HomeLayout {
    pub root: PathBuf,
}

impl HomeLayout {
    pub fn carets(&self) -> PathBuf {
        self.root.join("carets")
    }
    pub fn caret_dir(&self, id: &str) -> PathBuf {
        self.carets().join(id)
    }
    pub fn trusted_keys(&self) -> PathBuf {
        self.root.join("trusted-keys.json")
    }
    pub fn grants_file(&self) -> PathBuf {
        self.root.join("grants.json")
    }
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.jsonl")
    }
    pub fn compiled_cache(&self) -> PathBuf {
        self.root.join("cache").join("compiled")
    }
    pub fn caret_data(&self, id: &str) -> PathBuf {
        self.root.join("data").join(id)
    }
    /// The empty directory mounted at `/` in every caret (see `wasi_guard`).
    pub fn sentinel_root(&self) -> PathBuf {
        self.root.join("sandbox-root")
    }
    pub fn caret_cache(&self, id: &str) -> PathBuf {
        self.root.join("cache").join("carets").join(id)
    }
}

/// One grant, with when and by whom it was given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub capability: Capability,
    pub granted_at: String,
    pub by: String,
}

/// Who signed an installed caret, when it came from a signed package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// ed25519 public key, hex.
    pub key: String,
    pub signer: String,
    /// The package's content hash the signature covers, hex.
    pub content_hash: String,
}

/// What the registry knows of an installed caret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstalledCaret {
    pub manifest: Manifest,
    /// BLAKE3 of the component bytes, hex.
    pub hash: String,
    pub size: u64,
    pub installed_at: String,
    /// Where it was installed from.
    pub source: PathBuf,
    /// The signature it was installed with; `None` for a caret installed from a directory
    /// or an unsigned package.
    #[serde(default)]
    pub provenance: Option<Provenance>,
    /// The version directory (under the caret's directory) this record was read from.
    #[serde(skip)]
    pub slot: String,
}

impl InstalledCaret {
    /// The installed component file.
    pub fn component_path(&self, layout: &HomeLayout) -> PathBuf {
        layout.caret_dir(&self.manifest.id).join(&self.slot).join("component.wasm")
    }
}

const INSTALL_RECORD: &str = "install.json";
/// Files naming the version directory in use and the one before it. Each is replaced with an
/// atomic rename, so an install or rollback killed at any point leaves one whole version in use.
const CURRENT: &str = "current";
const PREVIOUS: &str = "previous";
/// Touched by `symphony caret reload`: running kernels swap the caret in again.
const RELOAD: &str = "reload";

/// Reads a pointer file; `None` when it does not exist.
fn read_pointer(path: &Path) -> Result<Option<String>, KernelError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KernelError::io(path, e)),
    }
}

/// Holds a caret's directory lock: one install, rollback or removal at a time, across processes.
struct CaretLock(std::fs::File);

impl CaretLock {
    fn take(dir: &Path) -> Result<Self, KernelError> {
        std::fs::create_dir_all(dir).map_err(|e| KernelError::io(dir, e))?;
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| KernelError::io(&path, e))?;
        file.lock().map_err(|e| KernelError::io(&path, e))?;
        Ok(Self(file))
    }
}

impl Drop for CaretLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// The content hash the registry records for component bytes (BLAKE3, hex).
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The registry of one home.
#[derive(Debug)]
pub struct Registry {
    layout: HomeLayout,
    /// Serialises read-modify-write of the grants file within this process.
    grants_lock: Mutex<()>,
}

/// Validates a component against its manifest: the world matches the declared kind and API,
/// and every import that needs a declaration has one.
pub fn check_component(manifest: &Manifest, info: &ComponentInfo) -> Result<(), KernelError> {
    if let Some(e) = world_mismatch(manifest, info) {
        return Err(e);
    }
    let undeclared = undeclared_imports(manifest, info);
    if !undeclared.is_empty() {
        return Err(KernelError::UndeclaredImports { id: manifest.id.clone(), undeclared });
    }
    Ok(())
}

/// Why a component does not implement the world and API version its manifest declares.
pub fn world_mismatch(manifest: &Manifest, info: &ComponentInfo) -> Option<KernelError> {
    let found = match &info.world {
        World::Caret { kind, api } => {
            if *kind != manifest.kind {
                format!("implements the `{kind}` world")
            } else if *api != manifest.api.to_string() {
                return Some(KernelError::ApiMismatch {
                    id: manifest.id.clone(),
                    declared: manifest.api.to_string(),
                    found: api.clone(),
                });
            } else {
                return None;
            }
        }
        World::Command => "is a plain wasi:cli command (run it with `symphony run-command`)".to_owned(),
        World::Unknown => format!("matches no Symphony world (exports: {})", info.exports.join(", ")),
    };
    Some(KernelError::WorldMismatch { id: manifest.id.clone(), declared: manifest.kind, found })
}

/// The imports a manifest does not declare a capability for: `(import, what to declare)`.
pub fn undeclared_imports(manifest: &Manifest, info: &ComponentInfo) -> Vec<(String, String)> {
    let declared = |prefixes: &[&str]| {
        manifest.capabilities.iter().any(|c| {
            let text = c.to_string();
            prefixes.iter().any(|p| text.starts_with(p))
        })
    };
    let mut undeclared = Vec::new();
    for import in &info.imports {
        let reach = inspect::reach_of(import);
        let ok = match reach {
            inspect::Reach::Net => declared(&["net."]),
            inspect::Reach::Http => declared(&["net.http:"]),
            inspect::Reach::Process => declared(&["process.exec:"]),
            inspect::Reach::Proxy => declared(&["caret.call:", "pit."]),
            _ => true,
        };
        if !ok && let Some(needs) = reach.required_declaration() {
            undeclared.push((import.clone(), needs.to_owned()));
        }
    }
    undeclared
}

impl Registry {
    pub fn new(layout: HomeLayout) -> Self {
        Self { layout, grants_lock: Mutex::new(()) }
    }

    pub fn layout(&self) -> &HomeLayout {
        &self.layout
    }

    /// Reads the manifest in `dir` and the component it names, with a build hint if missing.
    pub fn read_caret_dir(dir: &Path) -> Result<(Manifest, PathBuf, Vec<u8>), KernelError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest = Manifest::load(&manifest_path)?;
        let component = dir.join(&manifest.component);
        let bytes = match std::fs::read(&component) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KernelError::ComponentMissing {
                    path: component,
                    hint: format!(
                        "run `cargo xtask carets` in the Symphony checkout, or `cargo build --release --target wasm32-wasip2` in {} and copy the .wasm to `{}`",
                        dir.display(),
                        manifest.component.display()
                    ),
                });
            }
            Err(e) => return Err(KernelError::io(&component, e)),
        };
        Ok((manifest, component, bytes))
    }

    /// Installs a caret from its directory.
    pub fn install_dir(&self, dir: &Path) -> Result<InstalledCaret, KernelError> {
        let (manifest, component, bytes) = Self::read_caret_dir(dir)?;
        self.install(manifest, &bytes, &component)
    }

    /// Installs a component with a manifest given separately.
    pub fn install_files(&self, wasm: &Path, manifest_path: &Path) -> Result<InstalledCaret, KernelError> {
        let manifest = Manifest::load(manifest_path)?;
        let bytes = std::fs::read(wasm).map_err(|e| KernelError::io(wasm, e))?;
        self.install(manifest, &bytes, wasm)
    }

    /// Validates and stores a caret atomically: the new version appears whole or not at all,
    /// and the previous version stays until the new one is in place.
    pub fn install(&self, manifest: Manifest, bytes: &[u8], source: &Path) -> Result<InstalledCaret, KernelError> {
        self.install_with(manifest, bytes, source, None)
    }

    /// `install`, recording who signed the package it came from.
    pub fn install_with(
        &self,
        mut manifest: Manifest,
        bytes: &[u8],
        source: &Path,
        provenance: Option<Provenance>,
    ) -> Result<InstalledCaret, KernelError> {
        let info = inspect::inspect(bytes)
            .map_err(|e| KernelError::InvalidComponent { path: source.to_path_buf(), reason: e.to_string() })?;
        check_component(&manifest, &info)?;
        manifest.component = PathBuf::from("component.wasm");

        let mut record = InstalledCaret {
            hash: content_hash(bytes),
            size: bytes.len() as u64,
            installed_at: now_rfc3339(),
            source: source.to_path_buf(),
            manifest,
            provenance,
            slot: String::new(),
        };
        let id = record.manifest.id.clone();
        let dir = self.layout.caret_dir(&id);
        let _lock = CaretLock::take(&dir)?;
        let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let slot = format!("v-{}-{nonce:x}", &record.hash[..16]);
        let staging = dir.join(format!(".staging-{}-{nonce:x}", std::process::id()));
        std::fs::create_dir_all(&staging).map_err(|e| KernelError::io(&staging, e))?;
        let write = || -> std::io::Result<()> {
            write_atomic(&staging.join("component.wasm"), bytes)?;
            let json = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
            write_atomic(&staging.join(INSTALL_RECORD), &json)?;
            std::fs::rename(&staging, dir.join(&slot))?;
            sync_dir(&dir);
            Ok(())
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(KernelError::io(&dir, e));
        }
        // The switch: until this rename the old version is in use, after it the new one.
        let old = read_pointer(&dir.join(CURRENT))?;
        write_atomic(&dir.join(CURRENT), slot.as_bytes()).map_err(|e| KernelError::io(dir.join(CURRENT), e))?;
        if let Some(old) = old.filter(|o| *o != slot) {
            write_atomic(&dir.join(PREVIOUS), old.as_bytes()).map_err(|e| KernelError::io(dir.join(PREVIOUS), e))?;
        }
        self.prune(&dir)?;
        record.slot = slot;
        // Grants the new manifest no longer asks for lapse.
        self.retain_grants(&id, &record.manifest)?;
        Ok(record)
    }

    /// Every installed caret, sorted by id. A broken entry is skipped with a warning so one
    /// bad caret never hides the others.
    pub fn list(&self) -> Result<Vec<InstalledCaret>, KernelError> {
        let dir = self.layout.carets();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KernelError::io(&dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match self.get(&name) {
                Ok(c) => out.push(c),
                Err(e) => tracing::warn!(caret = %name, error = %e, "skipping unreadable installed caret"),
            }
        }
        out.sort_by(|a, b| a.manifest.id.cmp(&b.manifest.id));
        Ok(out)
    }

    /// Removes version directories that are neither current nor previous, and staging
    /// directories left by killed installs. Called with the caret's lock held.
    fn prune(&self, dir: &Path) -> Result<(), KernelError> {
        let keep = [read_pointer(&dir.join(CURRENT))?, read_pointer(&dir.join(PREVIOUS))?];
        for entry in std::fs::read_dir(dir).map_err(|e| KernelError::io(dir, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale_slot = name.starts_with("v-") && !keep.iter().flatten().any(|k| *k == name);
            if stale_slot || name.starts_with(".staging-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// Makes the previous version current again (and the current one previous).
    pub fn rollback(&self, id: &str) -> Result<InstalledCaret, KernelError> {
        let dir = self.layout.caret_dir(id);
        self.get(id)?;
        let _lock = CaretLock::take(&dir)?;
        let Some(previous) = read_pointer(&dir.join(PREVIOUS))? else {
            return Err(KernelError::NoPrevious(id.to_owned()));
        };
        let current = read_pointer(&dir.join(CURRENT))?.unwrap_or_default();
        if !dir.join(&previous).join(INSTALL_RECORD).is_file() {
            return Err(KernelError::NoPrevious(id.to_owned()));
        }
        write_atomic(&dir.join(CURRENT), previous.as_bytes()).map_err(|e| KernelError::io(dir.join(CURRENT), e))?;
        write_atomic(&dir.join(PREVIOUS), current.as_bytes()).map_err(|e| KernelError::io(dir.join(PREVIOUS), e))?;
        let restored = self.get(id)?;
        self.retain_grants(id, &restored.manifest)?;
        Ok(restored)
    }

    /// One installed caret.
    /// What running kernels watch to notice installs from other processes: the current
    /// version's slot, and when a reload was last asked for (`request_reload`).
    pub fn install_stamp(&self, id: &str) -> Result<(Option<String>, Option<std::time::SystemTime>), KernelError> {
        let dir = self.layout.caret_dir(id);
        let slot = read_pointer(&dir.join(CURRENT))?;
        let reload = std::fs::metadata(dir.join(RELOAD)).and_then(|m| m.modified()).ok();
        Ok((slot, reload))
    }

    /// Asks running kernels to swap `id` in again from its installed file.
    pub fn request_reload(&self, id: &str) -> Result<(), KernelError> {
        self.get(id)?;
        let path = self.layout.caret_dir(id).join(RELOAD);
        write_atomic(&path, now_rfc3339().as_bytes()).map_err(|e| KernelError::io(&path, e))
    }

    pub fn get(&self, id: &str) -> Result<InstalledCaret, KernelError> {
        let dir = self.layout.caret_dir(id);
        let Some(slot) = read_pointer(&dir.join(CURRENT))? else {
            return Err(KernelError::NotInstalled(id.to_owned()));
        };
        let path = dir.join(&slot).join(INSTALL_RECORD);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KernelError::NotInstalled(id.to_owned())),
            Err(e) => return Err(KernelError::io(&path, e)),
        };
        let mut record: InstalledCaret = serde_json::from_slice(&text).map_err(|e| KernelError::Corrupt {
            path,
            what: "install record",
            line: e.line(),
            reason: e.to_string(),
        })?;
        record.slot = slot;
        Ok(record)
    }

    /// Removes a caret and its grants.
    pub fn remove(&self, id: &str) -> Result<InstalledCaret, KernelError> {
        let installed = self.get(id)?;
        let dir = self.layout.caret_dir(id);
        let trash = self.layout.carets().join(format!(".removed-{id}-{}", std::process::id()));
        {
            let _lock = CaretLock::take(&dir)?;
            std::fs::rename(&dir, &trash).map_err(|e| KernelError::io(&dir, e))?;
        }
        let _ = std::fs::remove_dir_all(&trash);
        let _guard = self.grants_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.read_grants()?;
        if all.remove(id).is_some() {
            self.write_grants(&all)?;
        }
        Ok(installed)
    }

    fn read_grants(&self) -> Result<BTreeMap<String, Vec<GrantRecord>>, KernelError> {
        let path = self.layout.grants_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KernelError::Corrupt {
                path,
                what: "grants file",
                line: e.line(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(KernelError::io(&path, e)),
        }
    }

    fn write_grants(&self, all: &BTreeMap<String, Vec<GrantRecord>>) -> Result<(), KernelError> {
        let path = self.layout.grants_file();
        let json = serde_json::to_vec_pretty(all).map_err(|e| KernelError::io(&path, std::io::Error::other(e)))?;
        std::fs::create_dir_all(&self.layout.root).map_err(|e| KernelError::io(&self.layout.root, e))?;
        write_atomic(&path, &json).map_err(|e| KernelError::io(&path, e))
    }

    /// The grant records of one principal (a caret id).
    pub fn grant_records(&self, id: &str) -> Result<Vec<GrantRecord>, KernelError> {
        Ok(self.read_grants()?.remove(id).unwrap_or_default())
    }

    /// The capabilities granted to one principal.
    pub fn grants(&self, id: &str) -> Result<CapabilitySet, KernelError> {
        Ok(CapabilitySet::new(self.grant_records(id)?.into_iter().map(|g| g.capability)))
    }

    /// Grants capabilities to an installed caret; each must be covered by what its manifest asks.
    pub fn grant(&self, id: &str, caps: &[Capability], by: &str) -> Result<Vec<GrantRecord>, KernelError> {
        let installed = self.get(id)?;
        let requested = CapabilitySet::new(installed.manifest.capabilities.iter().cloned());
        for cap in caps {
            if !requested.allows(cap) {
                let asked: Vec<String> = installed.manifest.capabilities.iter().map(ToString::to_string).collect();
                return Err(KernelError::NotRequested {
                    id: id.to_owned(),
                    capability: cap.to_string(),
                    requested: if asked.is_empty() { "nothing".to_owned() } else { asked.join(", ") },
                });
            }
        }
        self.add_grants(id, caps, by)
    }

    /// Grants capabilities to a principal that is not a caret (the Conductor, `@conductor`):
    /// it has no manifest, so a person's grant is all there is.
    pub fn grant_principal(&self, principal: &str, caps: &[Capability], by: &str) -> Result<Vec<GrantRecord>, KernelError> {
        self.add_grants(principal, caps, by)
    }

    /// Records grants (those already held are kept as they were); returns all the principal holds.
    fn add_grants(&self, principal: &str, caps: &[Capability], by: &str) -> Result<Vec<GrantRecord>, KernelError> {
        let _guard = self.grants_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.read_grants()?;
        let list = all.entry(principal.to_owned()).or_default();
        for cap in caps {
            if !list.iter().any(|g| &g.capability == cap) {
                list.push(GrantRecord { capability: cap.clone(), granted_at: now_rfc3339(), by: by.to_owned() });
            }
        }
        let out = list.clone();
        self.write_grants(&all)?;
        Ok(out)
    }

    /// Revokes capabilities; returns those that were actually held.
    pub fn revoke(&self, id: &str, caps: &[Capability]) -> Result<Vec<Capability>, KernelError> {
        self.get(id)?;
        let _guard = self.grants_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.read_grants()?;
        let mut removed = Vec::new();
        if let Some(list) = all.get_mut(id) {
            list.retain(|g| {
                let drop = caps.contains(&g.capability);
                if drop {
                    removed.push(g.capability.clone());
                }
                !drop
            });
        }
        self.write_grants(&all)?;
        Ok(removed)
    }

    fn retain_grants(&self, id: &str, manifest: &Manifest) -> Result<(), KernelError> {
        let _guard = self.grants_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.read_grants()?;
        let requested = CapabilitySet::new(manifest.capabilities.iter().cloned());
        if let Some(list) = all.get_mut(id) {
            let before = list.len();
            list.retain(|g| requested.allows(&g.capability));
            if list.len() != before {
                self.write_grants(&all)?;
            }
        }
        Ok(())
    }
}
