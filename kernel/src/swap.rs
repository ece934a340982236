//! Hot swap: replacing the version of a caret a running kernel serves with the one now
//! installed, with no dropped call and, where the caret exports `lifecycle.save-state` /
//! `restore-state`, its state carried over.
//!
//! The order is what makes it safe: the new version is compiled, linked and instantiated off
//! the serving path (a trap at start-up is found here); then it takes the old one's place in
//! the map but holds its callers at a gate; the old one stops taking calls (callers that had
//! not started go back to the map), lets the calls in flight finish, and gives up its state;
//! the new one restores it and opens. Any failure puts the old version back, serving.

use crate::capability::CapabilitySet;
use crate::error::{CallError, KernelError};
use crate::kernel::{build_loaded, KernelInner};
use crate::manifest::CaretKind;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A completed swap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SwapReport {
    pub id: String,
    pub from_version: String,
    pub to_version: String,
    /// BLAKE3 of the components, hex.
    pub from_hash: String,
    pub to_hash: String,
    /// Bytes of state carried over (`None`: the old version had no instance to ask).
    pub state_bytes: Option<usize>,
    /// Whether the new component came from the compiled cache.
    pub cached: bool,
    /// From the start of the swap until the new version took calls, in microseconds.
    pub took_us: u64,
}

/// What a swap request came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum SwapOutcome {
    /// The new version serves.
    Swapped(SwapReport),
    /// The installed version is the one serving already.
    Unchanged,
    /// The caret is not loaded in this kernel: its next call loads the installed version.
    NotLoaded,
}

/// Why the old version keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("{id}: the new build is a {to}, the running one a {from}; a swap keeps the kind (remove and install instead)")]
    KindChanged { id: String, from: CaretKind, to: CaretKind },
    #[error("{id}: the new build targets API {to}, incompatible with the running {from}; restart to change API version")]
    ApiChanged { id: String, from: String, to: String },
    #[error(
        "{id} {version} asks for {} beyond what the running version asked for; it keeps serving until you grant {}",
        .capabilities.join(", "),
        .capabilities.iter().map(|c| format!("`symphony caret grant {id} {c}`")).collect::<Vec<_>>().join(" and ")
    )]
    NeedsGrant { id: String, version: String, capabilities: Vec<String> },
    #[error("{id}: the new version failed to start: {error}")]
    Start { id: String, error: CallError },
    #[error("{id}: the running version could not hand over its state: {error}")]
    Handover { id: String, error: CallError },
}

/// Something the kernel publishes for the IDE and `symphony dev` (see `Kernel::subscribe`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event")]
pub enum KernelEvent {
    #[serde(rename = "caret.swapped")]
    Swapped(SwapReport),
    #[serde(rename = "caret.swap-failed")]
    SwapFailed { id: String, from_hash: String, to_hash: String, reason: String },
}

/// Two API versions are compatible when this kernel supports the new one and they share the
/// major version (the minor too, while below 1.0).
fn api_compatible(from: &semver::Version, to: &semver::Version) -> bool {
    crate::wit::SUPPORTED_API_VERSIONS.contains(&to.to_string().as_str())
        && from.major == to.major
        && (from.major > 0 || from.minor == to.minor)
}

/// Swaps the installed version of `id` in; see the module documentation.
/// With `force`, a version is swapped in again even when it is the one serving (a reload).
pub(crate) fn swap_installed(inner: &Arc<KernelInner>, id: &str, force: bool) -> Result<SwapOutcome, SwapError> {
    let _one_at_a_time = inner.swapping.lock().unwrap_or_else(|p| p.into_inner());
    let start = Instant::now();
    let installed = inner.registry.get(id)?;
    let old = inner.carets.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
    let Some(old) = old else { return Ok(SwapOutcome::NotLoaded) };
    if old.slot == installed.slot && !force {
        return Ok(SwapOutcome::Unchanged);
    }
    let (from_hash, to_hash) = (old.hash.to_hex().to_string(), installed.hash.clone());
    let fail = |e: SwapError| {
        inner.audit.event(id, "caret.swap-failed", &format!("{from_hash} -> {to_hash}"), format!("{e}; pid {}", std::process::id()));
        publish(inner, KernelEvent::SwapFailed { id: id.to_owned(), from_hash: from_hash.clone(), to_hash: to_hash.clone(), reason: e.to_string() });
        e
    };

    let (from_m, to_m) = (&old.manifest, &installed.manifest);
    if from_m.kind != to_m.kind {
        return Err(fail(SwapError::KindChanged { id: id.to_owned(), from: from_m.kind, to: to_m.kind }));
    }
    if !api_compatible(&from_m.api, &to_m.api) {
        return Err(fail(SwapError::ApiChanged { id: id.to_owned(), from: from_m.api.to_string(), to: to_m.api.to_string() }));
    }
    let asked_before = CapabilitySet::new(from_m.capabilities.iter().cloned());
    let grants = old.grants();
    let ungranted: Vec<String> = to_m
        .capabilities
        .iter()
        .filter(|c| !asked_before.allows(c) && !grants.allows(c))
        .map(ToString::to_string)
        .collect();
    if !ungranted.is_empty() {
        return Err(fail(SwapError::NeedsGrant { id: id.to_owned(), version: to_m.version.to_string(), capabilities: ungranted }));
    }
    let to_version = to_m.version.to_string();

    // Off the serving path: compile (or take from the cache), link, start one instance.
    let (new, cache) = build_loaded(inner, installed).map_err(|e| fail(e.into()))?;
    if let Err(error) = new.prepare_pending(&inner.self_ref) {
        new.discard();
        return Err(fail(SwapError::Start { id: id.to_owned(), error }));
    }

    // The switch: later calls find the new version (and wait at its gate); calls in flight
    // finish on the old one, which then hands over its state.
    inner.carets.write().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned(), Arc::clone(&new));
    let restore_old = |new: &crate::caret::LoadedCaret| {
        inner.carets.write().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned(), Arc::clone(&old));
        old.open();
        new.discard();
    };
    let state = match old.retire_and_save(old.manifest.limits.time + Duration::from_secs(1)) {
        Ok(state) => state,
        Err(error) => {
            restore_old(&new);
            return Err(fail(SwapError::Handover { id: id.to_owned(), error }));
        }
    };
    let state_bytes = state.as_ref().map(Vec::len);
    if let Some(state) = state
        && let Err(error) = new.seed(state)
    {
        restore_old(&new);
        return Err(fail(SwapError::Start { id: id.to_owned(), error }));
    }
    new.open();

    let report = SwapReport {
        id: id.to_owned(),
        from_version: old.manifest.version.to_string(),
        to_version,
        from_hash,
        to_hash,
        state_bytes,
        cached: cache == crate::engine::CacheOutcome::Hit,
        took_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
    };
    inner.audit.event(
        id,
        "caret.swapped",
        &format!("{} -> {}", report.from_hash, report.to_hash),
        format!(
            "{} -> {}; {} bytes of state; pid {}",
            report.from_version,
            report.to_version,
            state_bytes.unwrap_or(0),
            std::process::id()
        ),
    );
    tracing::info!(caret = id, from = %report.from_hash, to = %report.to_hash, took_us = report.took_us, "swapped");
    publish(inner, KernelEvent::Swapped(report.clone()));
    Ok(SwapOutcome::Swapped(report))
}

/// Sends an event to every live subscriber, forgetting those that hung up.
pub(crate) fn publish(inner: &KernelInner, event: KernelEvent) {
    let mut subscribers = inner.subscribers.lock().unwrap_or_else(|p| p.into_inner());
    subscribers.retain(|tx| tx.send(event.clone()).is_ok());
}

/// How often running kernels look for installs by other processes: the most it adds to a
/// swap's latency (reading a few small files; negligible work).
pub const WATCH_INTERVAL: Duration = Duration::from_millis(10);

/// Swaps in what other processes install (`symphony dev`, `symphony caret install`, `caret
/// reload`) and applies the grants they change, for as long as it lives. Polling a few small
/// files keeps it simple and portable; the interval bounds the added swap latency.
#[derive(Debug)]
pub struct InstallWatcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for InstallWatcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn watch_installs(inner: &Arc<KernelInner>, every: Duration) -> InstallWatcher {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let weak = Arc::downgrade(inner);
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("symphony-install-watch".to_owned())
        .spawn(move || {
            let mut state = WatchState::default();
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(every);
                let Some(inner) = weak.upgrade() else { break };
                state.tick(&inner);
            }
        })
        .ok();
    InstallWatcher { stop, thread }
}

#[derive(Default)]
struct WatchState {
    grants_changed: Option<std::time::SystemTime>,
    /// The last reload request acted on, per caret.
    reloads: std::collections::HashMap<String, std::time::SystemTime>,
    /// Swaps held for a grant: the slot and the grants-file time they were refused at.
    held: std::collections::HashMap<String, (String, Option<std::time::SystemTime>)>,
}

impl WatchState {
    fn tick(&mut self, inner: &Arc<KernelInner>) {
        let grants_file = inner.registry.layout().grants_file();
        let grants_time = std::fs::metadata(&grants_file).and_then(|m| m.modified()).ok();
        let loaded: Vec<(String, String, Arc<crate::caret::LoadedCaret>)> = inner
            .carets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, c)| (id.clone(), c.slot.clone(), Arc::clone(c)))
            .collect();
        if grants_time != self.grants_changed {
            self.grants_changed = grants_time;
            for (id, _, caret) in &loaded {
                if let Ok(grants) = inner.registry.grants(id)
                    && *caret.grants() != grants
                {
                    caret.set_grants(Arc::new(grants));
                }
            }
        }
        for (id, serving, _) in loaded {
            let Ok((Some(slot), reload)) = inner.registry.install_stamp(&id) else { continue };
            let reload_asked = reload.is_some_and(|r| self.reloads.get(&id).is_none_or(|seen| r > *seen));
            if let Some(r) = reload {
                self.reloads.insert(id.clone(), r);
            }
            let held_here = self.held.get(&id) == Some(&(slot.clone(), grants_time));
            if (slot != serving && !held_here) || reload_asked {
                match swap_installed(inner, &id, reload_asked) {
                    Err(SwapError::NeedsGrant { .. }) => {
                        self.held.insert(id, (slot, grants_time));
                    }
                    Err(e) => {
                        tracing::warn!(caret = %id, error = %e, "swap refused; the running version keeps serving");
                        // Not retried until something else changes.
                        self.held.insert(id, (slot, grants_time));
                    }
                    Ok(_) => {
                        self.held.remove(&id);
                    }
                }
            }
        }
    }
}
