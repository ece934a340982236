//! The kernel: owns the engine, the registry, the audit log and the loaded carets, and routes
//! every call through one proxy (`invoke`) that checks the caller's capabilities.

use crate::audit::AuditLog;
use crate::capability::{Capability, CapabilitySet};
use crate::caret::LoadedCaret;
use crate::config::Config;
use crate::engine::{build_engine, start_epoch_ticker, CacheOutcome, CompiledCache};
use crate::error::{CallError, ErrorCode, KernelError};
use crate::host::{self, CallObserver, CaretState, ScopeRoots};
use crate::registry::{GrantRecord, HomeLayout, InstalledCaret, Registry};
use serde::Serialize;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use wasmtime::component::Linker;
use wasmtime::Engine;

/// How deep carets may call carets through the proxy before the kernel refuses.
const MAX_CALL_DEPTH: u32 = 16;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The person at the CLI or UI: the owner of this home.
    User,
    /// A caret, by id: limited to its grants.
    Caret(String),
    /// The Conductor: limited to the grants kept under `@conductor`.
    Conductor,
}

impl Principal {
    /// The parts that name the principal, without allocating (`["caret", id]`, `["user"]`).
    fn key_parts(&self) -> [&str; 2] {
        match self {
            Principal::User => ["user", ""],
            Principal::Caret(id) => ["caret", id],
            Principal::Conductor => ["conductor", ""],
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User => f.write_str("user"),
            Principal::Caret(id) => write!(f, "caret:{id}"),
            Principal::Conductor => f.write_str("conductor"),
        }
    }
}

/// A native in-process service reachable as `pit/<name>`. The kernel defines the trait; the
/// binary that composes the system registers the services, so the kernel names none of them.
pub trait Service: Send + Sync {
    /// The name after `pit/`.
    fn name(&self) -> &str;
    /// Handles `op` with a JSON payload.
    fn call(&self, principal: &Principal, op: &str, payload: &str) -> Result<String, CallError>;
}

/// What `invoke` may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Caret(String),
    Pit(String),
}

/// A target borrowed from the caller's text (the proxy's hot path does not allocate it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TargetRef<'a> {
    Caret(&'a str),
    Pit(&'a str),
}

impl<'a> TargetRef<'a> {
    fn parse(text: &'a str) -> Result<Self, CallError> {
        let bad = || {
            CallError::new(
                ErrorCode::InvalidInput,
                format!("target `{text}` is not `caret/<id>` or `pit/<service>`"),
            )
        };
        let (kind, name) = text.split_once('/').ok_or_else(bad)?;
        if name.is_empty() || name.contains('/') {
            return Err(bad());
        }
        match kind {
            "caret" => Ok(TargetRef::Caret(name)),
            "pit" => Ok(TargetRef::Pit(name)),
            _ => Err(bad()),
        }
    }
}

impl Target {
    /// Parses `caret/<id>` or `pit/<service>`.
    pub fn parse(text: &str) -> Result<Self, CallError> {
        Ok(match TargetRef::parse(text)? {
            TargetRef::Caret(id) => Target::Caret(id.to_owned()),
            TargetRef::Pit(service) => Target::Pit(service.to_owned()),
        })
    }
}

/// Where the kernel lives and what it serves.
#[derive(Clone, Debug)]
pub struct KernelOptions {
    /// The state directory (`--home`, `SYMPHONY_HOME`).
    pub home: PathBuf,
    /// The directory `workspace` scopes mean.
    pub workspace: PathBuf,
    pub config: Config,
}

pub(crate) struct KernelInner {
    pub engine: Engine,
    pub linker: Linker<CaretState>,
    pub registry: Registry,
    pub audit: Arc<AuditLog>,
    pub cache: CompiledCache,
    pub workspace: PathBuf,
    pub config: Config,
    pub(crate) carets: RwLock<HashMap<String, Arc<LoadedCaret>>>,
    services: RwLock<HashMap<String, Arc<dyn Service>>>,
    pub(crate) self_ref: Weak<KernelInner>,
    pub(crate) subscribers: Mutex<Vec<std::sync::mpsc::Sender<crate::swap::KernelEvent>>>,
    /// One swap at a time: an install and the install watcher may both ask for the same one.
    pub(crate) swapping: Mutex<()>,
    /// Grants of principals that are not loaded carets (the Conductor), with the grants file's
    /// identity they were read at: reading and parsing the file on every call cost ~2.5 µs.
    principal_grants: RwLock<HashMap<String, StampedGrants>>,
}

/// What identifies one version of the grants file: it is replaced (temp + rename) on every
/// change, so inode, modification time and length together change with it.
type GrantsStamp = (u64, std::time::SystemTime, u64);
/// A principal's grants and the grants file they were read from.
type StampedGrants = (Option<GrantsStamp>, Arc<CapabilitySet>);

fn grants_stamp(path: &std::path::Path) -> Option<GrantsStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.modified().ok()?, m.len()))
}

/// The Symphony kernel. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Kernel {
    inner: Arc<KernelInner>,
}

/// One caret's load: what it cost, or which caret failed and why.
pub type LoadOutcome = Result<LoadReport, (String, KernelError)>;

/// The grants-file key of the Conductor's grants.
const CONDUCTOR_PRINCIPAL: &str = "@conductor";

/// A handle that does not keep the kernel alive: for services the kernel itself holds, which
/// would otherwise keep it from ever being dropped.
#[derive(Clone, Debug)]
pub struct WeakKernel(Weak<KernelInner>);

impl WeakKernel {
    /// The kernel, while it is alive.
    pub fn upgrade(&self) -> Option<Kernel> {
        self.0.upgrade().map(|inner| Kernel { inner })
    }
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel").field("home", &self.inner.registry.layout().root).finish()
    }
}

/// What an install from a registry is doing, for progress displays.
#[derive(Clone, Copy, Debug)]
pub enum InstallProgress<'a> {
    /// The versions to install, dependencies first.
    Planned(&'a [crate::package_index::IndexEntry]),
    /// One of them is being verified and installed.
    Installing(&'a crate::package_index::IndexEntry),
}

/// A loaded caret as the CLI and UI show it.
#[derive(Clone, Debug, Serialize)]
pub struct CaretStatus {
    #[serde(flatten)]
    pub installed: InstalledCaret,
    pub grants: Vec<GrantRecord>,
}

/// What loading a caret cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadReport {
    pub id: String,
    pub cache: CacheOutcome,
}

thread_local! {
    /// Depth of nested proxy calls on this thread (caret → caret → …).
    static CALL_DEPTH: Cell<u32> = const { Cell::new(0) };
}

struct DepthGuard;

impl DepthGuard {
    fn enter() -> Result<Self, CallError> {
        CALL_DEPTH.with(|d| {
            if d.get() >= MAX_CALL_DEPTH {
                return Err(CallError::new(
                    ErrorCode::Failed,
                    format!("calls nested deeper than {MAX_CALL_DEPTH} carets; is a caret calling itself in a loop?"),
                ));
            }
            d.set(d.get() + 1);
            Ok(DepthGuard)
        })
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        CALL_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl Kernel {
    /// Opens (creating) the home and starts the engine. Carets load lazily on first call.
    pub fn open(options: KernelOptions) -> Result<Self, KernelError> {
        let KernelOptions { home, workspace, config } = options;
        std::fs::create_dir_all(&home).map_err(|e| KernelError::io(&home, e))?;
        let layout = HomeLayout { root: home };
        let sentinel = layout.sentinel_root();
        std::fs::create_dir_all(&sentinel).map_err(|e| KernelError::io(&sentinel, e))?;
        let workspace = workspace.canonicalize().map_err(|e| KernelError::io(&workspace, e))?;
        let audit = Arc::new(
            AuditLog::open(&layout.audit_log(), config.kernel.audit_sample)
                .map_err(|e| KernelError::io(layout.audit_log(), e))?,
        );
        let engine = match build_engine(config.kernel.pooling) {
            Ok(e) => e,
            Err(e) if config.kernel.pooling => {
                // Pooling reserves address space up front; where that is refused, run without.
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                build_engine(false)?
            }
            Err(e) => return Err(e),
        };
        start_epoch_ticker(&engine, Duration::from_millis(config.kernel.epoch_tick_ms));
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker).map_err(|e| KernelError::Engine(format!("{e:#}")))?;
        let cache = CompiledCache::new(&engine, config.kernel.compiled_cache.then(|| layout.compiled_cache()));
        let inner = Arc::new_cyclic(|self_ref| KernelInner {
            engine,
            linker,
            registry: Registry::new(layout),
            audit,
            cache,
            workspace,
            config,
            carets: RwLock::new(HashMap::new()),
            services: RwLock::new(HashMap::new()),
            self_ref: self_ref.clone(),
            subscribers: Mutex::new(Vec::new()),
            swapping: Mutex::new(()),
            principal_grants: RwLock::default(),
        });
        Ok(Self { inner })
    }

    pub(crate) fn inner(&self) -> &Arc<KernelInner> {
        &self.inner
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn workspace(&self) -> &Path {
        &self.inner.workspace
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn audit_log(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The names of the registered Pit services (`pit/<name>`), sorted.
    pub fn services(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.services.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }

    /// A handle that does not keep this kernel alive.
    pub fn downgrade(&self) -> WeakKernel {
        WeakKernel(Arc::downgrade(&self.inner))
    }

    /// Registers a native service as `pit/<name>`.
    pub fn register_service(&self, service: Arc<dyn Service>) {
        let mut services = self.inner.services.write().unwrap_or_else(|p| p.into_inner());
        services.insert(service.name().to_owned(), service);
    }

    /// Installs a caret from its directory and (re)loads it if it was loaded.
    pub fn install_dir(&self, dir: &Path) -> Result<InstalledCaret, KernelError> {
        let installed = self.inner.registry.install_dir(dir)?;
        self.serve_installed(&installed.manifest.id);
        Ok(installed)
    }

    /// Installs a component with a separate manifest.
    pub fn install_files(&self, wasm: &Path, manifest: &Path) -> Result<InstalledCaret, KernelError> {
        let installed = self.inner.registry.install_files(wasm, manifest)?;
        self.serve_installed(&installed.manifest.id);
        Ok(installed)
    }

    /// The keys this home trusts to sign carets.
    pub fn trust(&self) -> crate::trust::TrustStore {
        crate::trust::TrustStore::new(self.inner.registry.layout().trusted_keys())
    }

    /// Installs a `.caret` package: its contents must match their signed hash, and its signer
    /// must be trusted (unless the package is unsigned and `allow_unsigned` is set).
    pub fn install_package(&self, path: &Path, allow_unsigned: bool) -> Result<InstalledCaret, crate::package::PackageError> {
        use crate::package::PackageError;
        let verified = crate::package::open(path)?;
        let provenance = match &verified.signed_by {
            Some((key, signer)) => {
                if !self.trust().is_trusted(key)? {
                    return Err(PackageError::Untrusted { path: path.to_path_buf(), key: key.clone(), signer: signer.clone() });
                }
                Some(crate::registry::Provenance {
                    key: key.clone(),
                    signer: signer.clone(),
                    content_hash: verified.content_hash.clone(),
                })
            }
            None if allow_unsigned => None,
            None => return Err(PackageError::Unsigned { path: path.to_path_buf() }),
        };
        let installed = self.inner.registry.install_with(verified.manifest, &verified.component, path, provenance)?;
        self.serve_installed(&installed.manifest.id);
        Ok(installed)
    }

    /// Installs `id` at the highest published version matching `req` from a registry
    /// directory, with its dependencies (each a signed package from a trusted key), dependencies
    /// first. Each caret's install is atomic; if one fails, those before it stay installed.
    /// `progress` hears the plan once resolved and each caret as its install starts.
    pub fn install_from_registry(
        &self,
        registry: &crate::package_index::PackageIndex,
        id: &str,
        req: &semver::VersionReq,
        progress: &mut dyn FnMut(InstallProgress<'_>),
    ) -> Result<Vec<InstalledCaret>, crate::package_index::IndexError> {
        let installed: HashMap<String, semver::Version> = self
            .inner
            .registry
            .list()?
            .into_iter()
            .map(|c| (c.manifest.id, c.manifest.version))
            .collect();
        let plan = registry.resolve(id, req, &installed)?;
        progress(InstallProgress::Planned(&plan));
        let mut done = Vec::new();
        for entry in &plan {
            progress(InstallProgress::Installing(entry));
            done.push(self.install_package(&registry.package_path(entry), false)?);
        }
        Ok(done)
    }

    /// The capability audit of `subject`: declared, granted, reachable, used, provenance and
    /// findings. `since` limits which audit-log records count as use.
    pub fn audit_report(
        &self,
        subject: &crate::capability_audit::AuditSubject,
        since: Option<std::time::Duration>,
    ) -> Result<crate::capability_audit::AuditReport, KernelError> {
        crate::capability_audit::report(&self.inner.registry, &self.inner.audit, subject, since)
    }

    /// Every installed caret with its grants.
    pub fn list(&self) -> Result<Vec<CaretStatus>, KernelError> {
        self.inner
            .registry
            .list()?
            .into_iter()
            .map(|installed| {
                let grants = self.inner.registry.grant_records(&installed.manifest.id)?;
                Ok(CaretStatus { installed, grants })
            })
            .collect()
    }

    /// One installed caret with its grants.
    pub fn info(&self, id: &str) -> Result<CaretStatus, KernelError> {
        let installed = self.inner.registry.get(id)?;
        let grants = self.inner.registry.grant_records(id)?;
        Ok(CaretStatus { installed, grants })
    }

    /// Returns a caret to the version installed before the current one.
    pub fn rollback(&self, id: &str) -> Result<InstalledCaret, KernelError> {
        let restored = self.inner.registry.rollback(id)?;
        self.serve_installed(id);
        Ok(restored)
    }

    /// Removes a caret, its grants, and its loaded instances.
    pub fn remove(&self, id: &str) -> Result<InstalledCaret, KernelError> {
        let removed = self.inner.registry.remove(id)?;
        self.unload(id);
        Ok(removed)
    }

    /// Grants capabilities (each must narrow what the manifest asks); applies to new calls at once.
    pub fn grant(&self, id: &str, caps: &[Capability], by: &str) -> Result<Vec<GrantRecord>, KernelError> {
        let records = self.inner.registry.grant(id, caps, by)?;
        self.refresh_grants(id)?;
        Ok(records)
    }

    /// Grants capabilities to the Conductor (Python reaching the proxy); it has no manifest to
    /// narrow, so grant it only what a melody's Python needs.
    pub fn grant_conductor(&self, caps: &[Capability], by: &str) -> Result<Vec<GrantRecord>, KernelError> {
        self.inner.registry.grant_principal(CONDUCTOR_PRINCIPAL, caps, by)
    }

    /// Revokes capabilities; calls that start afterwards run without them.
    pub fn revoke(&self, id: &str, caps: &[Capability]) -> Result<Vec<Capability>, KernelError> {
        let removed = self.inner.registry.revoke(id, caps)?;
        self.refresh_grants(id)?;
        Ok(removed)
    }

    fn refresh_grants(&self, id: &str) -> Result<(), KernelError> {
        let loaded = self.inner.carets.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        if let Some(caret) = loaded {
            caret.set_grants(Arc::new(self.inner.registry.grants(id)?));
        }
        Ok(())
    }

    /// After an install or rollback: a loaded caret is swapped to the installed version in
    /// place (calls keep flowing, state carries over). When the swap is refused the running
    /// version keeps serving (the refusal is published and audited) — unless the kind or API
    /// changed, which no swap can bridge: then it is unloaded and the next call loads anew.
    fn serve_installed(&self, id: &str) {
        use crate::swap::SwapError;
        match self.swap(id) {
            Ok(_) => {}
            Err(SwapError::KindChanged { .. } | SwapError::ApiChanged { .. }) => self.unload(id),
            Err(e) => tracing::warn!(caret = id, error = %e, "installed, but the running version keeps serving"),
        }
    }

    fn unload(&self, id: &str) {
        self.inner.carets.write().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Makes the installed version of `id` the one this kernel serves, without dropping a
    /// call: see `swap.rs`. On any error the version serving before keeps serving.
    pub fn swap(&self, id: &str) -> Result<crate::swap::SwapOutcome, crate::swap::SwapError> {
        crate::swap::swap_installed(&self.inner, id, false)
    }

    /// Swaps the installed version in again, fresh instances with the state carried over,
    /// even if it is the one serving.
    pub fn reload(&self, id: &str) -> Result<crate::swap::SwapOutcome, crate::swap::SwapError> {
        crate::swap::swap_installed(&self.inner, id, true)
    }

    /// Follows installs, reloads and grants made by other processes on this home, every
    /// `every`, until the returned handle is dropped.
    pub fn watch_installs(&self, every: Duration) -> crate::swap::InstallWatcher {
        crate::swap::watch_installs(&self.inner, every)
    }

    /// The version (registry slot and BLAKE3) of `id` this kernel serves, if loaded.
    pub fn serving(&self, id: &str) -> Option<(String, String)> {
        let carets = self.inner.carets.read().unwrap_or_else(|p| p.into_inner());
        carets.get(id).map(|c| (c.slot.clone(), c.hash.to_hex().to_string()))
    }

    /// Kernel events (`caret.swapped`, `caret.swap-failed`) from now on.
    pub fn subscribe(&self) -> std::sync::mpsc::Receiver<crate::swap::KernelEvent> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.inner.subscribers.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    /// Loads an installed caret (from the compiled cache when possible).
    pub fn load(&self, id: &str) -> Result<LoadReport, KernelError> {
        let (_, cache) = load(&self.inner, id)?;
        Ok(LoadReport { id: id.to_owned(), cache })
    }

    /// Loads every installed caret; returns what each load cost or why it failed.
    pub fn load_all(&self) -> Result<Vec<LoadOutcome>, KernelError> {
        Ok(self
            .inner
            .registry
            .list()?
            .into_iter()
            .map(|c| self.load(&c.manifest.id).map_err(|e| (c.manifest.id.clone(), e)))
            .collect())
    }

    /// Instances alive for a loaded caret (0 when not loaded).
    pub fn instances(&self, id: &str) -> u32 {
        self.inner.carets.read().unwrap_or_else(|p| p.into_inner()).get(id).map_or(0, |c| c.instances())
    }

    /// The one call path: `principal` invokes `op` on `target` with a JSON payload.
    pub fn invoke(&self, principal: &Principal, target: &str, op: &str, payload: &str) -> Result<String, CallError> {
        invoke(&self.inner, principal, target, op, payload, None)
    }

    /// `invoke`, with an observer that receives streamed chunks and progress.
    pub fn invoke_observed(
        &self,
        principal: &Principal,
        target: &str,
        op: &str,
        payload: &str,
        observer: Arc<dyn CallObserver>,
    ) -> Result<String, CallError> {
        invoke(&self.inner, principal, target, op, payload, Some(observer))
    }
}

thread_local! {
    /// Time this thread has spent loading carets, so a caret calling another is not charged
    /// for the kernel compiling the callee (see `host.rs`).
    static LOADING: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Time the calling thread has spent loading carets so far.
pub(crate) fn time_spent_loading() -> Duration {
    LOADING.with(Cell::get)
}

fn load(inner: &Arc<KernelInner>, id: &str) -> Result<(Arc<LoadedCaret>, CacheOutcome), KernelError> {
    if let Some(c) = inner.carets.read().unwrap_or_else(|p| p.into_inner()).get(id) {
        return Ok((Arc::clone(c), CacheOutcome::Hit));
    }
    let started = Instant::now();
    let installed = inner.registry.get(id);
    let built = installed.and_then(|installed| build_loaded(inner, installed));
    LOADING.with(|spent| spent.set(spent.get() + started.elapsed()));
    let (caret, outcome) = built?;
    tracing::info!(caret = id, hash = %caret.hash.to_hex(), cache = ?outcome, "loaded");
    let mut carets = inner.carets.write().unwrap_or_else(|p| p.into_inner());
    // Another thread may have loaded it meanwhile; keep the first so pools are not split.
    let kept = carets.entry(id.to_owned()).or_insert(caret);
    Ok((Arc::clone(kept), outcome))
}

/// Checks an installed version's bytes against its record, compiles it (through the cache)
/// and links it, with the caret's current grants. Not yet serving.
pub(crate) fn build_loaded(inner: &Arc<KernelInner>, installed: crate::registry::InstalledCaret) -> Result<(Arc<LoadedCaret>, CacheOutcome), KernelError> {
    let id = installed.manifest.id.clone();
    let id = id.as_str();
    let layout = inner.registry.layout();
    let path = installed.component_path(layout);
    let bytes = std::fs::read(&path).map_err(|e| KernelError::io(&path, e))?;
    let hash = blake3::hash(&bytes);
    if hash.to_hex().as_str() != installed.hash {
        return Err(KernelError::Corrupt {
            path,
            what: "installed component",
            line: 0,
            reason: format!("BLAKE3 {} does not match the recorded {}; reinstall the caret", hash.to_hex(), installed.hash),
        });
    }
    let (component, outcome) = inner.cache.load(&inner.engine, &bytes, &hash, &path)?;
    let roots = ScopeRoots::for_owner(layout, &inner.workspace, id, false);
    let grants = Arc::new(grants_or_none(inner, id));
    let caret = Arc::new(LoadedCaret::new(
        installed.manifest,
        hash,
        &inner.engine,
        &inner.linker,
        &component,
        grants,
        roots,
        Arc::clone(&inner.audit),
        Duration::from_millis(inner.config.kernel.epoch_tick_ms),
        &path,
        installed.slot,
    )?);
    Ok((caret, outcome))
}

/// The capability a principal needs to reach `target`/`op`.
fn required_capability(target: TargetRef<'_>, op: &str) -> Capability {
    match target {
        TargetRef::Caret(id) => Capability::CaretCall { caret: id.to_owned(), op: Some(op.to_owned()) },
        TargetRef::Pit(service) => Capability::Pit { service: service.to_owned(), op: Some(op.to_owned()) },
    }
}

fn principal_grants(inner: &KernelInner, principal: &Principal) -> Result<Option<Arc<CapabilitySet>>, CallError> {
    let id = match principal {
        Principal::User => return Ok(None),
        Principal::Caret(id) => id.as_str(),
        Principal::Conductor => CONDUCTOR_PRINCIPAL,
    };
    if let Some(c) = inner.carets.read().unwrap_or_else(|p| p.into_inner()).get(id) {
        return Ok(Some(c.grants()));
    }
    // A stat per call keeps this exact across processes (a revoke elsewhere applies to the
    // next call) without reading the file each time.
    let stamp = grants_stamp(&inner.registry.layout().grants_file());
    if let Some((seen, grants)) = inner.principal_grants.read().unwrap_or_else(|p| p.into_inner()).get(id)
        && stamp.is_some()
        && *seen == stamp
    {
        return Ok(Some(Arc::clone(grants)));
    }
    let grants = Arc::new(grants_or_none(inner, id));
    inner.principal_grants.write().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned(), (stamp, Arc::clone(&grants)));
    Ok(Some(grants))
}

/// The grants of a principal; when they cannot be read (a corrupt grants file) the kernel
/// fails closed, with no grants, and keeps serving.
fn grants_or_none(inner: &KernelInner, id: &str) -> CapabilitySet {
    inner.registry.grants(id).unwrap_or_else(|e| {
        tracing::error!(principal = id, error = %e, "grants unreadable; running with none");
        CapabilitySet::default()
    })
}

/// The proxy. Every caller (CLI, UI, melodies, Conductor, carets) comes through here.
pub(crate) fn invoke(
    inner: &Arc<KernelInner>,
    principal: &Principal,
    target_text: &str,
    op: &str,
    payload: &str,
    observer: Option<Arc<dyn CallObserver>>,
) -> Result<String, CallError> {
    let _span = tracing::debug_span!("proxy.invoke", %principal, target = target_text, op).entered();
    let _depth = DepthGuard::enter()?;
    let target = TargetRef::parse(target_text)?;
    if op.is_empty() {
        return Err(CallError::new(ErrorCode::InvalidInput, "op is empty"));
    }
    let caller_caret = match principal {
        Principal::Caret(id) => Some(id.as_str()),
        _ => None,
    };
    if let Some(grants) = principal_grants(inner, principal)? {
        let needed = required_capability(target, op);
        if !grants.allows(&needed) {
            let needed = needed.to_string();
            inner.audit.denied(&principal.to_string(), caller_caret, &needed, &format!("{target_text}#{op}"), None);
            let mut e = CallError::denied(format!("{principal} may not call {target_text} `{op}`"), needed);
            e.caret = caller_caret.map(str::to_owned);
            return Err(e);
        }
    }
    let [who, id] = principal.key_parts();
    inner.audit.allowed_use(&[who, id, target_text, op], || crate::audit::AllowedUse {
        principal: principal.to_string(),
        caret: caller_caret.map(str::to_owned),
        capability: Some(required_capability(target, op).to_string()),
        target: format!("{target_text}#{op}"),
    });

    match target {
        TargetRef::Caret(id) => loop {
            let caret = match load(inner, id) {
                Ok((c, _)) => c,
                Err(KernelError::NotInstalled(_)) => {
                    return Err(CallError::new(ErrorCode::NotFound, format!("no caret `{id}` is installed")));
                }
                Err(e) => return Err(CallError::new(ErrorCode::Failed, e.to_string()).with_caret(id)),
            };
            // `None`: that version was swapped out before the call started; the map already
            // holds its successor.
            if let Some(result) = caret.call(&inner.self_ref, principal, op, payload, observer.clone()) {
                return result;
            }
        },
        TargetRef::Pit(name) => {
            let service = inner.services.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned();
            match service {
                Some(s) => s.call(principal, op, payload),
                None => Err(CallError::new(ErrorCode::NotFound, format!("no Pit service `{name}` is running"))),
            }
        }
    }
}
