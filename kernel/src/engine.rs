//! The wasmtime engine (component model, epoch interruption, optional pooling) and the disk
//! cache of compiled components keyed by BLAKE3 of the bytes and the engine's compatibility hash.

use crate::error::KernelError;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// Most caret instances alive at once across the kernel when pooling.
const POOL_INSTANCES: u32 = 256;
/// Largest linear memory a pooled instance may grow to; manifests ask for less.
const POOL_MAX_MEMORY: usize = 1 << 30;

/// Builds the engine the kernel runs every caret on.
pub fn build_engine(pooling: bool) -> Result<Engine, KernelError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES);
        pool.total_core_instances(POOL_INSTANCES * 4);
        pool.total_memories(POOL_INSTANCES * 2);
        pool.total_tables(POOL_INSTANCES * 4);
        pool.max_memory_size(POOL_MAX_MEMORY);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).map_err(|e| KernelError::Engine(format!("{e:#}")))
}

/// Starts the thread that advances the engine's epoch every `tick`; it ends with the engine.
pub fn start_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("symphony-epoch".into()).spawn(move || {
        loop {
            std::thread::sleep(tick);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the epoch ticker: time limits will not fire");
    }
}

/// Feeds `Hash` output into BLAKE3 so the engine's compatibility hash is stable across runs.
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let bytes = self.0.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&bytes.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// How a component was obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the compiled cache.
    Hit,
    /// Compiled (no cache entry, or the cache is off).
    Compiled,
    /// A cache entry existed but was rejected and rebuilt; the reason says why.
    Rebuilt(String),
}

const MAGIC: &[u8; 8] = b"SYMCWSM1";

/// Compiles components, keeping the results on disk.
pub struct CompiledCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl std::fmt::Debug for CompiledCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledCache").field("dir", &self.dir).finish()
    }
}

impl CompiledCache {
    /// A cache in `dir`, or none at all.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = Blake3Hasher(blake3::Hasher::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = format!("{:016x}", h.finish());
        Self { dir, engine_key }
    }

    fn entry_path(&self, hash: &blake3::Hash) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{}-{}.cwasm", hash.to_hex(), self.engine_key)))
    }

    /// Loads the component for `bytes` (whose BLAKE3 is `hash`), from the cache when a valid
    /// entry exists, else by compiling and storing the result.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &blake3::Hash,
        source: &Path,
    ) -> Result<(Component, CacheOutcome), KernelError> {
        let Some(entry) = self.entry_path(hash) else {
            return Ok((compile(engine, bytes, source)?, CacheOutcome::Compiled));
        };
        let rejected = match std::fs::read(&entry) {
            Ok(file) => match self.trust(engine, &file) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(reason) => {
                    tracing::warn!(entry = %entry.display(), %reason, "compiled cache entry rejected; recompiling");
                    Some(reason)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("unreadable: {e}")),
        };
        let serialized = engine
            .precompile_component(bytes)
            .map_err(|e| KernelError::InvalidComponent { path: source.to_path_buf(), reason: format!("{e:#}") })?;
        let component = deserialize(engine, &serialized).map_err(KernelError::Engine)?;
        if let Err(e) = store_entry(&entry, &serialized) {
            // A cache that cannot be written costs a compile next time, nothing more.
            tracing::warn!(entry = %entry.display(), error = %e, "cannot write compiled cache entry");
        }
        Ok((component, rejected.map_or(CacheOutcome::Compiled, CacheOutcome::Rebuilt)))
    }

    /// Checks an entry's framing and checksum before handing it to wasmtime: a corrupt or
    /// tampered file must never be deserialised, since deserialisation trusts its input.
    fn trust(&self, engine: &Engine, file: &[u8]) -> Result<Component, String> {
        if file.len() < MAGIC.len() + 32 || &file[..MAGIC.len()] != MAGIC {
            return Err("bad header".to_owned());
        }
        let (sum, payload) = file[MAGIC.len()..].split_at(32);
        if blake3::hash(payload).as_bytes() != sum {
            return Err("checksum mismatch".to_owned());
        }
        deserialize(engine, payload)
    }
}

fn compile(engine: &Engine, bytes: &[u8], source: &Path) -> Result<Component, KernelError> {
    Component::new(engine, bytes)
        .map_err(|e| KernelError::InvalidComponent { path: source.to_path_buf(), reason: format!("{e:#}") })
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, payload: &[u8]) -> Result<Component, String> {
    // SAFETY: `payload` is either what `precompile_component` just produced in this process,
    // or a cache entry whose BLAKE3 checksum matched what this kernel wrote; wasmtime also
    // checks the engine version and configuration and errors on a mismatch.
    unsafe { Component::deserialize(engine, payload) }.map_err(|e| format!("{e:#}"))
}

fn store_entry(entry: &Path, serialized: &[u8]) -> std::io::Result<()> {
    let dir = entry.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut framed = Vec::with_capacity(MAGIC.len() + 32 + serialized.len());
    framed.extend_from_slice(MAGIC);
    framed.extend_from_slice(blake3::hash(serialized).as_bytes());
    framed.extend_from_slice(serialized);
    crate::fsutil::write_atomic(entry, &framed)
}
