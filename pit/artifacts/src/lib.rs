//! The Pit's artifact store — first layer: content-addressed blobs. A blob is cut into
//! content-defined chunks (FastCDC), so near-identical versions share most of their bytes;
//! each chunk is stored once, zstd-compressed, named by the BLAKE3 of its bytes, and checked
//! against that name on every read. A blob is a *recipe* (its chunks, in order) named by the
//! BLAKE3 of the whole content. Every file is written to a temporary name, fsynced and renamed,
//! so nothing half-written is ever visible.
//!
//! Second layer: named artifacts with versions (each pointing at a blob and its parent),
//! metadata and lineage, in append-only per-name histories; one writing process at a time.
//! Every version carries a quality score with its factors (`quality.rs`); the latest version
//! of every name is in a tantivy full-text index (`search.rs`), near-real-time and rebuildable
//! from the store. Tiers and the proxy service build on these.

mod blobs;
mod names;
pub mod quality;
pub mod search;

pub use blobs::{BlobId, BlobStore, GcReport, PutReport, StoreError, Usage};
pub use names::{ArtifactError, ArtifactStore, Meta, Stats, Version};
pub use quality::Quality;
pub use search::{Hit, SearchError, SearchIndex, COMMIT_EVERY};
