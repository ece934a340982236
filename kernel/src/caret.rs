//! A loaded caret: its pre-instantiated component, a pool of warm instances, and calls into
//! them under the caret's memory cap and per-call time limit.

use crate::audit::AuditLog;
use crate::capability::CapabilitySet;
use crate::error::{CallError, ErrorCode, KernelError};
use crate::host::{CallObserver, CaretState, ScopeRoots};
use crate::kernel::KernelInner;
use crate::manifest::{CaretKind, Manifest};
use crate::wit::since_v0_1_0 as v1;
use serde::Deserialize;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// A component ready to instantiate as one of the worlds.
enum WorldPre {
    Operator(v1::operator::OperatorPre<CaretState>),
    Instrument(v1::instrument::InstrumentPre<CaretState>),
    Motif(v1::motif::MotifPre<CaretState>),
}

enum WorldInstance {
    Operator(v1::operator::Operator),
    Instrument(v1::instrument::Instrument),
    Motif(v1::motif::Motif),
}

/// One warm instance with its own store.
struct Live {
    store: Store<CaretState>,
    world: WorldInstance,
    /// The grants generation the instance was built with; stale ones are dropped on return.
    generation: u64,
}

/// Whether a loaded caret takes calls: a version being swapped in waits for its state before
/// serving; a version swapped out sends callers back to the kernel's map.
const OPEN: u8 = 0;
const PENDING: u8 = 1;
const RETIRED: u8 = 2;

/// A caret the kernel can call.
pub(crate) struct LoadedCaret {
    pub manifest: Manifest,
    pub hash: blake3::Hash,
    /// The registry version directory it was loaded from.
    pub slot: String,
    gate: std::sync::atomic::AtomicU8,
    gate_lock: Mutex<()>,
    gate_changed: Condvar,
    /// State carried over from the version this one replaced: every instance made restores it.
    seed_state: Mutex<Option<Arc<Vec<u8>>>>,
    engine: Engine,
    pre: WorldPre,
    grants: RwLock<(u64, Arc<CapabilitySet>)>,
    idle: Mutex<Vec<Live>>,
    /// Instances in existence (idle or busy), bounded by `limits.instances`.
    existing: Mutex<u32>,
    freed: Condvar,
    /// Callers blocked in `acquire`; releases only wake the condvar when there are some
    /// (waking costs a syscall on every call otherwise).
    waiters: std::sync::atomic::AtomicUsize,
    roots: ScopeRoots,
    audit: Arc<AuditLog>,
    epoch_tick: Duration,
}

#[derive(Deserialize)]
struct RenderRequest {
    panel: String,
    #[serde(default)]
    state: String,
}

#[derive(Deserialize)]
struct EventRequest {
    panel: String,
    #[serde(default)]
    state: String,
    event: EventBody,
}

#[derive(Deserialize)]
struct EventBody {
    node: u32,
    kind: String,
    #[serde(default)]
    value: String,
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, CallError> {
    serde_json::to_string(value).map_err(|e| CallError::new(ErrorCode::Internal, e.to_string()))
}

fn parse_request<'a, T: Deserialize<'a>>(op: &str, payload: &'a str) -> Result<T, CallError> {
    serde_json::from_str(payload).map_err(|e| CallError::new(ErrorCode::InvalidInput, format!("`{op}` payload: {e}")))
}

fn from_wit_error(caret: &str, e: v1::Error) -> CallError {
    let code = match e.code {
        v1::ErrorCode::InvalidInput => ErrorCode::InvalidInput,
        v1::ErrorCode::NotFound => ErrorCode::NotFound,
        v1::ErrorCode::Denied => ErrorCode::Denied,
        v1::ErrorCode::Failed => ErrorCode::Failed,
        v1::ErrorCode::Unsupported => ErrorCode::Unsupported,
    };
    CallError { code, message: e.message, caret: Some(caret.to_owned()), capability: e.capability }
}

/// Epoch ticks until `left` has passed (rounded up, plus the tick under way).
pub(crate) fn ticks_for(left: Duration, tick: Duration) -> u64 {
    u64::try_from(left.as_micros().div_ceil(tick.as_micros().max(1))).unwrap_or(u64::MAX).saturating_add(1)
}

fn health_str(h: v1::HealthStatus) -> &'static str {
    match h {
        v1::HealthStatus::Ok => "ok",
        v1::HealthStatus::Degraded => "degraded",
        v1::HealthStatus::Failing => "failing",
    }
}

impl LoadedCaret {
    /// Links `component` for the manifest's kind; fails if it imports what the kernel lacks.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        manifest: Manifest,
        hash: blake3::Hash,
        engine: &Engine,
        linker: &Linker<CaretState>,
        component: &Component,
        grants: Arc<CapabilitySet>,
        roots: ScopeRoots,
        audit: Arc<AuditLog>,
        epoch_tick: Duration,
        source: &Path,
        slot: String,
    ) -> Result<Self, KernelError> {
        let invalid = |e: wasmtime::Error| KernelError::InvalidComponent {
            path: source.to_path_buf(),
            reason: format!("cannot link as {}: {e:#}", manifest.kind),
        };
        let instance_pre = linker.instantiate_pre(component).map_err(invalid)?;
        let pre = match manifest.kind {
            CaretKind::Operator => WorldPre::Operator(v1::operator::OperatorPre::new(instance_pre).map_err(invalid)?),
            CaretKind::Instrument => {
                WorldPre::Instrument(v1::instrument::InstrumentPre::new(instance_pre).map_err(invalid)?)
            }
            CaretKind::Motif => WorldPre::Motif(v1::motif::MotifPre::new(instance_pre).map_err(invalid)?),
        };
        Ok(Self {
            manifest,
            hash,
            slot,
            gate: std::sync::atomic::AtomicU8::new(OPEN),
            gate_lock: Mutex::new(()),
            gate_changed: Condvar::new(),
            seed_state: Mutex::new(None),
            engine: engine.clone(),
            pre,
            grants: RwLock::new((0, grants)),
            idle: Mutex::new(Vec::new()),
            existing: Mutex::new(0),
            freed: Condvar::new(),
            waiters: std::sync::atomic::AtomicUsize::new(0),
            roots,
            audit,
            epoch_tick,
        })
    }

    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// The grants new calls run under.
    pub fn grants(&self) -> Arc<CapabilitySet> {
        Arc::clone(&self.grants.read().unwrap_or_else(|p| p.into_inner()).1)
    }

    /// Replaces the grants; warm instances built with the old ones are dropped, and busy
    /// ones are dropped when their call returns.
    pub fn set_grants(&self, grants: Arc<CapabilitySet>) {
        {
            let mut g = self.grants.write().unwrap_or_else(|p| p.into_inner());
            *g = (g.0 + 1, grants);
        }
        let stale: Vec<Live> = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        for live in stale {
            self.drop_stale(live);
        }
    }

    /// Drops an instance built with grants that no longer hold, keeping its state (if the
    /// caret saves any) for the instance that replaces it.
    fn drop_stale(&self, mut live: Live) {
        if let Ok(state) = self.save_state(&mut live) {
            *self.seed_state.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(state));
        }
        drop(live);
        self.retire(1);
    }

    fn retire(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut existing = self.existing.lock().unwrap_or_else(|p| p.into_inner());
        *existing = existing.saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
        self.freed.notify_all();
    }

    fn instantiate(&self, kernel: &Weak<KernelInner>) -> Result<Live, CallError> {
        let (generation, grants) = {
            let g = self.grants.read().unwrap_or_else(|p| p.into_inner());
            (g.0, Arc::clone(&g.1))
        };
        let state = CaretState::new(
            wasmtime_wasi::WasiCtxBuilder::new(),
            Arc::from(self.id()),
            grants,
            &self.roots,
            self.manifest.limits.memory_bytes,
            kernel.clone(),
            Arc::clone(&self.audit),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // The epoch deadline is when to look, `deadline` when to stop: the kernel moves the
        // latter on by the time it spends loading a callee for this caret (see `host.rs`).
        let tick = self.epoch_tick;
        store.epoch_deadline_callback(move |store| {
            let left = store.data().deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(wasmtime::Trap::Interrupt.into());
            }
            Ok(wasmtime::UpdateDeadline::Continue(ticks_for(left, tick)))
        });
        self.arm_deadline(&mut store);
        let failed = |e: wasmtime::Error| {
            CallError::new(ErrorCode::Trap, format!("instantiation failed: {e:#}")).with_caret(self.id())
        };
        let world = match &self.pre {
            WorldPre::Operator(p) => WorldInstance::Operator(p.instantiate(&mut store).map_err(failed)?),
            WorldPre::Instrument(p) => WorldInstance::Instrument(p.instantiate(&mut store).map_err(failed)?),
            WorldPre::Motif(p) => WorldInstance::Motif(p.instantiate(&mut store).map_err(failed)?),
        };
        let mut live = Live { store, world, generation };
        let seed = self.seed_state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(state) = seed {
            self.restore_state(&mut live, &state)?;
        }
        Ok(live)
    }

    /// Asks an instance for its state (`lifecycle.save-state`).
    fn save_state(&self, live: &mut Live) -> Result<Vec<u8>, CallError> {
        self.arm_deadline(&mut live.store);
        let store = &mut live.store;
        let saved = match &live.world {
            WorldInstance::Operator(w) => w.symphony_caret_lifecycle().call_save_state(store),
            WorldInstance::Instrument(w) => w.symphony_caret_lifecycle().call_save_state(store),
            WorldInstance::Motif(w) => w.symphony_caret_lifecycle().call_save_state(store),
        };
        saved.map_err(|e| CallError::new(ErrorCode::Trap, format!("save-state trapped: {e:#}")).with_caret(self.id()))
    }

    /// Gives an instance the state a previous version saved (`lifecycle.restore-state`).
    fn restore_state(&self, live: &mut Live, state: &[u8]) -> Result<(), CallError> {
        self.arm_deadline(&mut live.store);
        let store = &mut live.store;
        let restored = match &live.world {
            WorldInstance::Operator(w) => w.symphony_caret_lifecycle().call_restore_state(store, state),
            WorldInstance::Instrument(w) => w.symphony_caret_lifecycle().call_restore_state(store, state),
            WorldInstance::Motif(w) => w.symphony_caret_lifecycle().call_restore_state(store, state),
        };
        match restored {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(from_wit_error(self.id(), e)),
            Err(trap) => Err(CallError::new(ErrorCode::Trap, format!("restore-state trapped: {trap:#}")).with_caret(self.id())),
        }
    }

    /// A version about to replace `old`: it makes one instance now (so a trap in start-up or
    /// in `restore-state` is found before it serves) and holds calls until `open`.
    pub fn prepare_pending(&self, kernel: &Weak<KernelInner>) -> Result<(), CallError> {
        self.gate.store(PENDING, std::sync::atomic::Ordering::SeqCst);
        *self.existing.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        match self.instantiate(kernel) {
            Ok(live) => {
                self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(live);
                Ok(())
            }
            Err(e) => {
                self.retire(1);
                Err(e)
            }
        }
    }

    /// Stops taking calls (callers go back to the kernel's map), waits until the calls in
    /// flight have finished, then returns the state of the most recently used instance — or
    /// `None` when no instance exists. `drain_for` bounds the wait.
    pub fn retire_and_save(&self, drain_for: Duration) -> Result<Option<Vec<u8>>, CallError> {
        self.set_gate(RETIRED);
        let give_up = Instant::now() + drain_for;
        let last = loop {
            {
                // Counted and taken under both locks: a caller that passed the gate just before
                // it closed may still pop an idle instance (it hands it back on seeing the gate),
                // and taking none here would hand over the state this version started from.
                let existing = self.existing.lock().unwrap_or_else(|p| p.into_inner());
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                if *existing as usize <= idle.len() {
                    break idle.pop();
                }
            }
            if Instant::now() >= give_up {
                return Err(CallError::new(ErrorCode::Busy, format!("calls still running after {drain_for:?}")).with_caret(self.id()));
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        match last {
            None => Ok(self.seed_state.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|s| s.to_vec())),
            Some(mut live) => {
                let saved = self.save_state(&mut live);
                self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(live);
                let _existing = self.existing.lock().unwrap_or_else(|p| p.into_inner());
                self.freed.notify_all();
                saved.map(Some)
            }
        }
    }

    /// Seeds the state every instance of this version starts from, including the one made by
    /// `prepare_pending` (restored here, before any call reaches it).
    pub fn seed(&self, state: Vec<u8>) -> Result<(), CallError> {
        let state = Arc::new(state);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        for live in idle.iter_mut() {
            self.restore_state(live, &state)?;
        }
        *self.seed_state.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
        Ok(())
    }

    /// Lets calls in: a new version once its state is restored, or (after a failed swap) the
    /// old version `retire_and_save` had closed.
    pub fn open(&self) {
        self.set_gate(OPEN);
    }

    /// Marks a version that will never serve (a failed swap's new version).
    pub fn discard(&self) {
        self.set_gate(RETIRED);
    }

    fn set_gate(&self, state: u8) {
        {
            let _guard = self.gate_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.gate.store(state, std::sync::atomic::Ordering::SeqCst);
            self.gate_changed.notify_all();
        }
        // Callers waiting for an instance of a retired version must go to its successor now,
        // not when their wait times out.
        let _existing = self.existing.lock().unwrap_or_else(|p| p.into_inner());
        self.freed.notify_all();
    }

    /// `Some(())` when calls may proceed; `None` when the caller must look the caret up again.
    fn pass_gate(&self) -> Result<Option<()>, CallError> {
        match self.gate.load(std::sync::atomic::Ordering::SeqCst) {
            OPEN => return Ok(Some(())),
            RETIRED => return Ok(None),
            _ => {}
        }
        let give_up = Instant::now() + self.manifest.limits.time;
        let mut guard = self.gate_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match self.gate.load(std::sync::atomic::Ordering::SeqCst) {
                OPEN => return Ok(Some(())),
                RETIRED => return Ok(None),
                _ => {}
            }
            let now = Instant::now();
            if now >= give_up {
                return Err(CallError::new(ErrorCode::Busy, "a new version is being swapped in").with_caret(self.id()));
            }
            guard = self.gate_changed.wait_timeout(guard, give_up - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Gives the store's next guest call the caret's time limit, from now.
    fn arm_deadline(&self, store: &mut Store<CaretState>) {
        let limit = self.manifest.limits.time;
        store.data_mut().deadline = Instant::now() + limit;
        store.set_epoch_deadline(ticks_for(limit, self.epoch_tick));
    }

    /// Takes a warm instance, or makes one if the caret is under its instance limit, else waits
    /// for one up to the call's time limit. `None`: this version was swapped out meanwhile.
    fn acquire(&self, kernel: &Weak<KernelInner>) -> Result<Option<Live>, CallError> {
        let generation = self.grants.read().unwrap_or_else(|p| p.into_inner()).0;
        loop {
            let popped = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match popped {
                Some(live) if live.generation == generation => return Ok(Some(live)),
                Some(stale) => self.drop_stale(stale),
                None => break,
            }
        }
        let limit = self.manifest.limits.instances;
        let give_up = Instant::now() + self.manifest.limits.time;
        {
            let mut existing = self.existing.lock().unwrap_or_else(|p| p.into_inner());
            while *existing >= limit {
                // Register before the last look at the idle list: a release either sees this
                // waiter and wakes it, or pushed before the look below and is found by it.
                self.waiters.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let popped = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let now = Instant::now();
                if popped.is_none() && self.gate.load(std::sync::atomic::Ordering::SeqCst) == RETIRED {
                    self.waiters.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    return Ok(None);
                }
                if popped.is_some() || now >= give_up {
                    self.waiters.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    return popped.map(Some).ok_or_else(|| {
                        CallError::new(
                            ErrorCode::Busy,
                            format!("all {limit} instances are busy (raise `limits.instances`)"),
                        )
                        .with_caret(self.id())
                    });
                }
                existing = self.freed.wait_timeout(existing, give_up - now).unwrap_or_else(|p| p.into_inner()).0;
                self.waiters.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
            *existing += 1;
        }
        self.instantiate(kernel).map(Some).inspect_err(|_| self.retire(1))
    }

    fn release(&self, live: Live) {
        let generation = self.grants.read().unwrap_or_else(|p| p.into_inner()).0;
        if live.generation == generation {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(live);
            if self.waiters.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                // Take the lock so a waiter between its check and its wait cannot miss this.
                let _guard = self.existing.lock().unwrap_or_else(|p| p.into_inner());
                self.freed.notify_one();
            }
        } else {
            self.drop_stale(live);
        }
    }

    /// Calls `op` with `payload` on a warm instance. Ops starting with `@` reach the world's
    /// other exports: `@describe`, `@health`, `@model`, `@theme`, `@panels`, `@render`, `@event`.
    /// `None` when this version has been swapped out before the call could start: the caller
    /// looks the caret up again and calls the version now serving.
    pub fn call(
        &self,
        kernel: &Weak<KernelInner>,
        principal: &crate::kernel::Principal,
        op: &str,
        payload: &str,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> Option<Result<String, CallError>> {
        match self.pass_gate() {
            Ok(Some(())) => {}
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        }
        if let Err(e) = self.check_ui_grant(op) {
            return Some(Err(e));
        }
        let live = match self.acquire(kernel) {
            Ok(Some(live)) => live,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        // Swapped out while this caller waited for an instance: hand it back, go to the new one.
        if self.gate.load(std::sync::atomic::Ordering::SeqCst) == RETIRED {
            self.release(live);
            return None;
        }
        Some(self.call_on(live, principal, op, payload, observer))
    }

    fn call_on(
        &self,
        mut live: Live,
        principal: &crate::kernel::Principal,
        op: &str,
        payload: &str,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> Result<String, CallError> {
        {
            let data = live.store.data_mut();
            data.observer = observer;
            data.limiter.hit = false;
        }
        self.arm_deadline(&mut live.store);
        live.store.data().take_denial();
        match self.dispatch(&mut live, op, payload) {
            Ok(result) => {
                live.store.data_mut().observer = None;
                let denial = live.store.data().take_denial();
                self.release(live);
                // A caret that failed after being refused something failed because of it.
                result.map_err(|mut e| {
                    if let (Some(capability), ErrorCode::Failed) = (denial, e.code) {
                        e.code = ErrorCode::Denied;
                        e.capability = Some(capability);
                    }
                    e
                })
            }
            Err(trap) => {
                let error = self.explain_trap(&live, &principal.to_string(), op, &trap);
                // A trapped instance may be in any state: never reuse it.
                drop(live);
                self.retire(1);
                Err(error)
            }
        }
    }

    /// A motif restyles or adds to the IDE only with the grant for it: `ui.theme` for its
    /// theme, `ui.panel` for its panels. The capability is the motif's own, so a refusal is
    /// audited against it, whoever asked.
    fn check_ui_grant(&self, op: &str) -> Result<(), CallError> {
        use crate::capability::{Capability, UiCapability};
        if self.manifest.kind != CaretKind::Motif {
            return Ok(());
        }
        let what = match op {
            "@theme" => UiCapability::Theme,
            "@panels" | "@render" | "@event" => UiCapability::Panel,
            _ => return Ok(()),
        };
        let needed = Capability::Ui { what };
        let id = self.id();
        if self.grants().allows(&needed) {
            self.audit.allowed_use(&["ui", id, op], || crate::audit::AllowedUse {
                principal: format!("caret:{id}"),
                caret: Some(id.to_owned()),
                capability: Some(needed.to_string()),
                target: format!("caret/{id}#{op}"),
            });
            return Ok(());
        }
        let needed = needed.to_string();
        self.audit.denied(&format!("caret:{id}"), Some(id), &needed, &format!("caret/{id}#{op}"), None);
        Err(CallError::denied(format!("{id} is not granted `{needed}`: `symphony caret grant {id} {needed}` lets it"), needed)
            .with_caret(id))
    }

    fn explain_trap(&self, live: &Live, principal: &str, op: &str, trap: &wasmtime::Error) -> CallError {
        let target = format!("caret/{}#{op}", self.id());
        let stderr = live.store.data().stderr_tail();
        let said = if stderr.is_empty() { String::new() } else { format!("; stderr: {stderr}") };
        if trap.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            let limit = self.manifest.limits.time;
            self.audit.limited(principal, self.id(), "limits.time", &target, format!("{limit:?}"));
            return CallError::new(ErrorCode::Timeout, format!("`{op}` ran past its time limit of {limit:?} and was stopped"))
                .with_caret(self.id());
        }
        if live.store.data().limiter.hit {
            let cap = self.manifest.limits.memory_bytes;
            self.audit.limited(principal, self.id(), "limits.memory", &target, format!("{cap} bytes"));
            return CallError::new(
                ErrorCode::OutOfMemory,
                format!("`{op}` hit the memory cap of {} MiB{said}", cap >> 20),
            )
            .with_caret(self.id());
        }
        let reason = match trap.downcast_ref::<wasmtime::Trap>() {
            Some(t) => t.to_string(),
            None => format!("{trap:#}"),
        };
        CallError::new(ErrorCode::Trap, format!("`{op}` trapped: {reason}{said}")).with_caret(self.id())
    }

    /// Runs the export; the outer error is a trap, the inner one the caret's own answer.
    fn dispatch(&self, live: &mut Live, op: &str, payload: &str) -> wasmtime::Result<Result<String, CallError>> {
        let id = self.id();
        let store = &mut live.store;
        let unsupported = |what: &str| {
            Ok(Err(CallError::new(ErrorCode::Unsupported, format!("a {} has no `{what}`", self.manifest.kind)).with_caret(id)))
        };
        let from = |e| from_wit_error(id, e);
        match (&live.world, op) {
            (WorldInstance::Operator(w), "@describe") => Ok(json(&describe(w.symphony_caret_operator_api().call_describe(store)?))),
            (WorldInstance::Instrument(w), "@describe") => Ok(json(&describe(w.symphony_caret_instrument_api().call_describe(store)?))),
            (WorldInstance::Motif(w), "@describe") => Ok(json(&describe(w.symphony_caret_motif_api().call_describe(store)?))),
            (WorldInstance::Operator(w), "@health") => Ok(Ok(health_str(w.symphony_caret_lifecycle().call_health(store)?).to_owned())),
            (WorldInstance::Instrument(w), "@health") => Ok(Ok(health_str(w.symphony_caret_lifecycle().call_health(store)?).to_owned())),
            (WorldInstance::Motif(w), "@health") => Ok(Ok(health_str(w.symphony_caret_lifecycle().call_health(store)?).to_owned())),
            (WorldInstance::Instrument(w), "@model") => {
                let card = w.symphony_caret_instrument_api().call_model_info(store)?;
                Ok(json(&serde_json::json!({
                    "name": card.name, "task": card.task, "context_window": card.context_window,
                })))
            }
            (WorldInstance::Motif(w), "@theme") => {
                let tokens = w.symphony_caret_motif_api().call_theme(store)?;
                let map: serde_json::Map<String, serde_json::Value> =
                    tokens.into_iter().map(|t| (t.name, serde_json::Value::String(t.value))).collect();
                Ok(json(&map))
            }
            (WorldInstance::Motif(w), "@panels") => Ok(json(&w.symphony_caret_motif_api().call_panels(store)?)),
            (WorldInstance::Motif(w), "@render") => {
                let req: RenderRequest = match parse_request(op, payload) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e.with_caret(id))),
                };
                match w.symphony_caret_motif_api().call_render(store, &req.panel, &req.state)? {
                    Ok(nodes) => Ok(json(&nodes.iter().map(vnode_json).collect::<Vec<_>>())),
                    Err(e) => Ok(Err(from(e))),
                }
            }
            (WorldInstance::Motif(w), "@event") => {
                let req: EventRequest = match parse_request(op, payload) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e.with_caret(id))),
                };
                let event = v1::motif::symphony::caret::ui::UiEvent {
                    node: req.event.node,
                    kind: req.event.kind,
                    value: req.event.value,
                };
                Ok(w.symphony_caret_motif_api().call_handle_event(store, &req.panel, &req.state, &event)?.map_err(from))
            }
            (_, special) if special.starts_with('@') => unsupported(special),
            (WorldInstance::Operator(w), _) => Ok(w.symphony_caret_operator_api().call_call(store, op, payload)?.map_err(from)),
            (WorldInstance::Instrument(w), _) => Ok(w.symphony_caret_instrument_api().call_call(store, op, payload)?.map_err(from)),
            (WorldInstance::Motif(w), _) => Ok(w.symphony_caret_motif_api().call_call(store, op, payload)?.map_err(from)),
        }
    }

    /// Number of instances alive (idle or busy); for tests and the pool's own accounting.
    pub fn instances(&self) -> u32 {
        *self.existing.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn describe(ops: Vec<v1::OpInfo>) -> serde_json::Value {
    serde_json::Value::Array(
        ops.into_iter()
            .map(|o| serde_json::json!({ "name": o.name, "description": o.description }))
            .collect(),
    )
}

fn vnode_json(n: &v1::motif::symphony::caret::ui::Vnode) -> serde_json::Value {
    serde_json::json!({
        "tag": n.tag,
        "key": n.key,
        "attrs": n.attrs.iter().map(|a| (a.name.clone(), serde_json::Value::String(a.value.clone()))).collect::<serde_json::Map<_, _>>(),
        "text": n.text,
        "children": n.children,
    })
}
