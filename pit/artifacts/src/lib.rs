//! The Pit's artifact store. Everything stored is a checksummed record in an append-only
//! pack journal (`pack.rs`) written with group commit: one write and one sync per batch of
//! concurrent puts; an in-memory catalog (`catalog.rs`) is rebuilt from the packs on open.
//!
//! First layer: content-addressed blobs (`blobs.rs`). A blob is cut into content-defined
//! chunks (FastCDC), so near-identical versions share most of their bytes; each chunk is stored
//! once, zstd-compressed, keyed by the BLAKE3 of its bytes and checked against it on every
//! read. A blob's recipe (its chunks, in order) is keyed by the BLAKE3 of the whole.
//!
//! Second layer: named artifacts with versions (each pointing at a blob and its parent),
//! metadata and lineage (`names.rs`); one writing process at a time. Every version carries a
//! quality score with its factors (`quality.rs`); the latest version of every name is in a
//! tantivy full-text index (`search.rs`) that follows the journal, near-real-time and
//! rebuildable. Blobs can be moved to warm and cold tiers (`Tier`) by the stale manager
//! (`pit/stale`), which brings them back on access.

mod blobs;
mod catalog;
mod cores;
mod legacy;
mod names;
mod pack;
pub mod quality;
pub mod search;

pub use blobs::{BlobId, BlobStore, GcReport, PutReport, Restorer, StoreError, Usage};
pub use catalog::Tier;
pub use names::{valid_name, ArtifactError, ArtifactStore, Meta, NewVersion, Stats, Stored, Version};

/// The zstd level chunks are put at unless configured (`[hot] level` in `stale.toml`).
/// Fast on purpose: compaction recompresses chunks and deltas harder at rest (`gc`: 9; warm
/// packs: 19), so the level at put only decides the hot tier's size until then. Against
/// level 3: imports ~10 % faster, ~4–5 % more bytes until `gc`, the same bytes after it.
pub const DEFAULT_LEVEL: i32 = 1;

/// Writes `bytes` to `path` so that `path` is either absent or whole: temp file, fsync,
/// rename, directory fsync.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let io = |source| StoreError::Io { path: path.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}
pub use quality::Quality;
pub use search::{Hit, SearchError, SearchIndex, COMMIT_EVERY};
