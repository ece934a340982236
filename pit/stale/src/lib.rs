//! The Pit's stale manager: retention tiers for the artifact store. Hot is the store's own
//! packs; warm is local zstd packs of many blobs (`<store>/warm/`); cold is the same packs in
//! object storage (a local directory by default, S3 by URL). Policies (`policy.rs`, read from
//! `<store>/stale.toml`) decide by name, age, last access, pins and training value; a sweep
//! (`sweep`, optionally `--dry-run`, or on a schedule) moves blobs down and deletes versions
//! the policy lets go; reading a warm or cold blob brings it back hot transparently (the
//! store calls the restorer installed here). Nothing a policy keeps is ever deleted, and a
//! blob's placement changes only after its new copy is durable.
//!
//! ```toml
//! [hot]
//! level = 1                         # zstd level of chunks as they are put (compaction: 9)
//! [cold]
//! url = "s3://bucket/prefix"        # or a local path; default `<store>/cold`
//! options = { aws_endpoint = "http://127.0.0.1:9000", aws_allow_http = "true" }
//! [sweep]
//! every = "24h"                     # the scheduled sweep (`serve` runs it)
//! level = 19                        # zstd level of warm packs
//! [[rule]]                          # see policy.rs
//! ```

pub mod policy;
pub mod tiers;

use policy::{Item, Level, Plan, Policy};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use symphony_artifacts::{ArtifactError, ArtifactStore, BlobId, GcReport, Tier};
use tiers::{Cold, Warm};

/// A warm or cold pack holds up to about this much.
const PACK_BYTES: u64 = 64 << 20;

/// Why the stale manager could not do what was asked; each names what and where.
#[derive(Debug, thiserror::Error)]
pub enum StaleError {
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error("cold storage {url}: {reason}")]
    Cold { url: String, reason: String },
    #[error("pack {pack}: {reason}")]
    Pack { pack: String, reason: String },
    #[error(transparent)]
    Store(#[from] ArtifactError),
}

/// What `stale.toml` says.
#[derive(Clone, Debug)]
pub struct Config {
    pub policy: Policy,
    /// Where cold packs go: a URL or a local path.
    pub cold_url: String,
    pub cold_options: Vec<(String, String)>,
    pub every: Option<Duration>,
    /// zstd level of warm packs.
    pub level: i32,
    /// zstd level the store compresses chunks at when they are put (1–22; default
    /// `symphony_artifacts::DEFAULT_LEVEL`, 1). Lower ingests faster; compaction recompresses
    /// at rest either way.
    pub hot_level: i32,
}

impl Config {
    /// Reads `<store>/stale.toml`; without one: no rules (everything stays hot), cold packs
    /// in `<store>/cold`, no schedule.
    pub fn load(store_root: &Path) -> Result<Self, StaleError> {
        let path = store_root.join("stale.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(policy::PolicyError { path: path.display().to_string(), reason: e.to_string() }.into()),
        };
        Self::parse(&text, store_root, &path.display().to_string())
    }

    /// Parses a `stale.toml` document for the store at `store_root`.
    pub fn parse(text: &str, store_root: &Path, path: &str) -> Result<Self, StaleError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ColdDoc {
            url: Option<String>,
            #[serde(default)]
            options: HashMap<String, String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SweepDoc {
            every: Option<String>,
            level: Option<i32>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct HotDoc {
            level: Option<i32>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            hot: Option<HotDoc>,
            cold: Option<ColdDoc>,
            sweep: Option<SweepDoc>,
            #[allow(dead_code)]
            rule: Option<toml::Value>,
        }
        let bad = |reason: String| policy::PolicyError { path: path.to_owned(), reason };
        let doc: Doc = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let policy = Policy::from_toml(text, path)?;
        let cold = doc.cold.unwrap_or(ColdDoc { url: None, options: HashMap::new() });
        let sweep = doc.sweep.unwrap_or(SweepDoc { every: None, level: None });
        let every = sweep.every.as_deref().map(|s| humantime::parse_duration(s).map_err(|e| bad(format!("[sweep] every: `{s}` is not a duration ({e})")))).transpose()?;
        let zstd_level = |key: &str, level: Option<i32>, default: i32| match level {
            None => Ok(default),
            Some(l) if (1..=22).contains(&l) => Ok(l),
            Some(l) => Err(bad(format!("{key}: {l} is not a zstd level (1–22)"))),
        };
        let hot_level = zstd_level("[hot] level", doc.hot.and_then(|h| h.level), symphony_artifacts::DEFAULT_LEVEL)?;
        let level = zstd_level("[sweep] level", sweep.level, 19)?;
        let mut options: Vec<(String, String)> = cold.options.into_iter().collect();
        options.sort();
        Ok(Self {
            policy,
            cold_url: cold.url.unwrap_or_else(|| store_root.join("cold").display().to_string()),
            cold_options: options,
            every,
            level,
            hot_level,
        })
    }
}

/// What a sweep did (or, dry, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SweepReport {
    pub dry_run: bool,
    pub plan: Plan,
    pub moved_warm: usize,
    pub moved_cold: usize,
    pub bytes_warm: u64,
    pub bytes_cold: u64,
    pub deleted: usize,
    pub packs_written: Vec<String>,
    pub packs_removed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc: Option<GcReport>,
    pub millis: u64,
}

/// The stale manager of one store.
pub struct StaleManager {
    store: Arc<ArtifactStore>,
    config: Config,
    warm: Arc<Warm>,
    cold: Arc<Cold>,
}

impl std::fmt::Debug for StaleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaleManager").field("cold", &self.cold.url).finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn level_of(tier: &Tier) -> Level {
    match tier {
        Tier::Hot => Level::Hot,
        Tier::Warm { .. } => Level::Warm,
        Tier::Cold { .. } => Level::Cold,
    }
}

impl StaleManager {
    /// Attaches to `store` with its `stale.toml`, and installs the restorer that brings warm
    /// and cold blobs back on access.
    pub fn open(store: Arc<ArtifactStore>) -> Result<Self, StaleError> {
        let config = Config::load(store.root())?;
        Self::with_config(store, config)
    }

    pub fn with_config(store: Arc<ArtifactStore>, config: Config) -> Result<Self, StaleError> {
        let warm = Arc::new(Warm { dir: store.root().join("warm") });
        let cold = Arc::new(Cold::open(&config.cold_url, &config.cold_options)?);
        let (w, c) = (Arc::clone(&warm), Arc::clone(&cold));
        store.blobs().set_restorer(Arc::new(move |id: &BlobId, tier: &Tier| -> Result<Vec<u8>, String> {
            let (pack, bytes) = match tier {
                Tier::Warm { pack } => (pack, w.read(pack).map_err(|e| e.to_string())?),
                Tier::Cold { pack } => (pack, c.get(pack).map_err(|e| e.to_string())?),
                Tier::Hot => return Err("the blob is hot".to_owned()),
            };
            tracing::info!(blob = %id, pack, "restoring from the {} tier", level_name(tier));
            tiers::read_pack(pack, &bytes, &id.0).map_err(|e| e.to_string())
        }));
        Ok(Self { store, config, warm, cold })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every version as a plan sees it.
    pub fn items(&self) -> Result<Vec<Item>, StaleError> {
        let names = self.store.names()?;
        let mut logs = Vec::with_capacity(names.len());
        let mut uses: HashMap<String, u32> = HashMap::new();
        for name in &names {
            let log = self.store.log(name)?;
            for v in &log {
                for d in &v.meta.derived_from {
                    *uses.entry(d.clone()).or_default() += 1;
                }
            }
            logs.push(log);
        }
        let mut items = Vec::new();
        for log in logs {
            let n = log.len() as u64;
            for (i, v) in log.into_iter().enumerate() {
                let created = humantime::parse_rfc3339(&v.created_at).ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
                let level = level_of(&self.store.blobs().tier(&v.blob).map_err(ArtifactError::from)?);
                items.push(Item {
                    uses: uses.get(&format!("{}@{}", v.name, v.version)).copied().unwrap_or(0),
                    last_access: self.store.last_access(&v.blob),
                    pinned: v.meta.tags.iter().any(|t| t == "pinned"),
                    quality: v.quality.as_ref().map(|q| q.score),
                    rank: n - 1 - i as u64,
                    name: v.name,
                    version: v.version,
                    blob: v.blob.0,
                    len: v.len,
                    created,
                    level,
                });
            }
        }
        Ok(items)
    }

    /// What a sweep now would do.
    pub fn plan(&self, now: u64) -> Result<Plan, StaleError> {
        Ok(policy::plan(&self.items()?, &self.config.policy, now))
    }

    /// Sweeps: moves what the policy says down a tier, deletes what it lets go, collects the
    /// store, and drops packs nothing points at. `progress(step, bytes moved, bytes to move)`
    /// hears of the moves.
    pub fn sweep(&self, dry_run: bool, now: Option<u64>, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<SweepReport, StaleError> {
        let started = std::time::Instant::now();
        let plan = self.plan(now.unwrap_or_else(unix_now))?;
        let mut report = SweepReport { dry_run, ..SweepReport::default() };
        if dry_run {
            report.plan = plan;
            report.millis = started.elapsed().as_millis() as u64;
            return Ok(report);
        }
        let total = plan.moves.iter().map(|m| m.len).sum::<u64>().max(1);
        let mut done = 0;
        for to in [Level::Warm, Level::Cold] {
            let moving: Vec<&policy::Move> = plan.moves.iter().filter(|m| m.to == to).collect();
            let mut group: Vec<(String, Vec<u8>)> = Vec::new();
            let mut group_bytes = 0;
            // Blobs of one warm pack tend to move together: the pack is read once for them.
            let mut open_pack: Option<(String, Vec<u8>)> = None;
            for m in &moving {
                let id = BlobId(m.blob.clone());
                // Through the tier it is in now (a warm blob is read from its pack; a hot one
                // from the store) without bringing it back hot.
                let bytes = match self.store.blobs().tier(&id).map_err(ArtifactError::from)? {
                    Tier::Hot => self.store.blobs().get(&id).map_err(ArtifactError::from)?,
                    Tier::Warm { pack } => {
                        let (name, bytes) = match open_pack.take() {
                            Some((name, bytes)) if name == pack => (name, bytes),
                            _ => (pack.clone(), self.warm.read(&pack)?),
                        };
                        let blob = tiers::read_pack(&name, &bytes, &id.0);
                        open_pack = Some((name, bytes));
                        blob?
                    }
                    Tier::Cold { .. } => continue,
                };
                group_bytes += bytes.len() as u64;
                group.push((m.blob.clone(), bytes));
                done += m.len;
                progress(if to == Level::Warm { "warm" } else { "cold" }, done, total);
                if group_bytes >= PACK_BYTES {
                    self.write_pack(std::mem::take(&mut group), to, &mut report)?;
                    group_bytes = 0;
                }
            }
            self.write_pack(group, to, &mut report)?;
        }
        for d in &plan.deletes {
            self.store.delete(&d.name, d.version)?;
            report.deleted += 1;
        }
        report.gc = Some(self.store.gc()?);
        report.packs_removed = self.drop_unused_packs()?;
        report.plan = plan;
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Writes one pack of `blobs` to the tier `to`, then records their new placement.
    fn write_pack(&self, blobs: Vec<(String, Vec<u8>)>, to: Level, report: &mut SweepReport) -> Result<(), StaleError> {
        if blobs.is_empty() {
            return Ok(());
        }
        let name = tiers::pack_name(&blobs);
        let bytes = tiers::build_pack(&blobs, self.config.level)?;
        let bytes_in: u64 = blobs.iter().map(|(_, b)| b.len() as u64).sum();
        let tier = if to == Level::Warm {
            self.warm.write(&name, &bytes)?;
            report.moved_warm += blobs.len();
            report.bytes_warm += bytes_in;
            Tier::Warm { pack: name.clone() }
        } else {
            self.cold.put(&name, bytes)?;
            report.moved_cold += blobs.len();
            report.bytes_cold += bytes_in;
            Tier::Cold { pack: name.clone() }
        };
        // Only now that the pack is durable does any blob point at it.
        let moved: Vec<(BlobId, Tier)> = blobs.into_iter().map(|(id, _)| (BlobId(id), tier.clone())).collect();
        self.store.blobs().set_tiers(&moved).map_err(ArtifactError::from)?;
        report.packs_written.push(name);
        Ok(())
    }

    /// Removes warm and cold packs no live version's blob is placed in.
    fn drop_unused_packs(&self) -> Result<usize, StaleError> {
        let live: HashSet<BlobId> = self.store.names()?.iter().map(|n| self.store.log(n)).collect::<Result<Vec<_>, _>>()?.into_iter().flatten().map(|v| v.blob).collect();
        let mut used = HashSet::new();
        for (id, tier) in self.store.blobs().placements() {
            if live.contains(&id) {
                match tier {
                    Tier::Warm { pack } | Tier::Cold { pack } => {
                        used.insert(pack);
                    }
                    Tier::Hot => {}
                }
            }
        }
        let mut removed = 0;
        for pack in self.warm.list() {
            if !used.contains(&pack) {
                self.warm.remove(&pack)?;
                removed += 1;
            }
        }
        for pack in self.cold.list()? {
            if !used.contains(&pack) {
                self.cold.delete(&pack)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Sweeps every `every` on a thread of its own until the handle is dropped.
    pub fn schedule(self: &Arc<Self>, every: Duration) -> Schedule {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let me = Arc::clone(self);
        let thread = std::thread::Builder::new().name("stale-sweep".to_owned()).spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                match me.sweep(false, None, &mut |_, _, _| {}) {
                    Ok(r) => tracing::info!(warm = r.moved_warm, cold = r.moved_cold, deleted = r.deleted, "scheduled sweep"),
                    Err(e) => tracing::warn!("scheduled sweep: {e}"),
                }
            }
        });
        Schedule { stop: Some(stop), thread: thread.ok() }
    }
}

fn level_name(tier: &Tier) -> &'static str {
    match tier {
        Tier::Hot => "hot",
        Tier::Warm { .. } => "warm",
        Tier::Cold { .. } => "cold",
    }
}

/// A running scheduled sweep; dropping it stops it (after a sweep under way finishes).
pub struct Schedule {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Schedule {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
