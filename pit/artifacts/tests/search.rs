//! Search and quality through the named store, with a real tantivy index on disk: ranked
//! hits with snippets, field filters, only the latest version indexed, near-real-time
//! visibility without an explicit commit, rebuilds of a missing or corrupt index, and the
//! quality score stored with each version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};
use symphony_artifacts::{ArtifactError, ArtifactStore, Meta, SearchError};

fn meta(kind: &str, tags: &[&str]) -> Meta {
    Meta { kind: kind.to_owned(), tags: tags.iter().map(|t| (*t).to_owned()).collect(), ..Meta::default() }
}

fn seed(store: &ArtifactStore) {
    store.put("src/inventory.rs", b"/// Items on a shelf.\npub struct Inventory { items: Vec<Item> }\n#[test]\nfn empty() {}\n", meta("code", &["rust"])).unwrap();
    store.put("docs/guide.md", b"# Guide\n\nThe inventory keeps items by name. Prices are in cents.\n", meta("text", &["docs"])).unwrap();
    store.put("notes/todo.txt", b"buy milk\nwater the plants\n", meta("text", &["personal"])).unwrap();
    store.commit_index().unwrap();
}

#[test]
fn ranked_hits_with_snippets_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    seed(&store);
    let hits = store.search("inventory", 10).unwrap();
    let names: Vec<&str> = hits.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{hits:?}");
    assert_eq!(names[0], "src/inventory.rs", "the name matches too, so it ranks first: {hits:?}");
    assert!(hits.iter().all(|h| h.snippet.to_lowercase().contains("«inventory»")), "{hits:?}");
    assert!(hits[0].score >= hits[1].score);

    let code = store.search("inventory AND kind:code", 10).unwrap();
    assert_eq!(code.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["src/inventory.rs"]);
    assert_eq!(code[0].tags, ["rust"]);
    assert!(code[0].quality.is_some_and(|q| q > 0.5), "{code:?}");
    let tagged = store.search("tags:personal", 10).unwrap();
    assert_eq!(tagged.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["notes/todo.txt"]);
    assert!(store.search("nothing-like-this", 10).unwrap().is_empty());

    match store.search("kind:(", 10) {
        Err(ArtifactError::Search(SearchError::Query { query, .. })) => assert_eq!(query, "kind:("),
        other => panic!("a bad query is a typed error naming it: {other:?}"),
    }
}

#[test]
fn only_the_latest_version_is_found_and_puts_become_searchable_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    store.put("draft", b"the first wording mentions zeppelins", Meta::default()).unwrap();
    store.put("draft", b"the second wording mentions submarines", Meta::default()).unwrap();
    // No explicit commit: the index commits by itself (near-real-time).
    let started = Instant::now();
    while store.search("submarines", 5).unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "a put never became searchable");
        std::thread::sleep(Duration::from_millis(10));
    }
    let hit = &store.search("submarines", 5).unwrap()[0];
    assert_eq!((hit.name.as_str(), hit.version), ("draft", 2));
    assert!(store.search("zeppelins", 5).unwrap().is_empty(), "an older version is not what a search finds");
    assert_eq!(store.indexed(), 1);
}

#[test]
fn a_missing_or_corrupt_index_is_rebuilt_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ArtifactStore::open(dir.path(), 3).unwrap();
        seed(&store);
    }
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    {
        let store = ArtifactStore::open(dir.path(), 3).unwrap();
        assert_eq!(store.search("inventory", 10).unwrap().len(), 2, "rebuilt after it was deleted");
    }
    std::fs::write(dir.path().join("index/meta.json"), b"{ not an index").unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    assert_eq!(store.search("inventory", 10).unwrap().len(), 2, "rebuilt after it was corrupted");
    // Nothing stored was touched.
    assert_eq!(store.get("docs/guide.md").unwrap(), b"# Guide\n\nThe inventory keeps items by name. Prices are in cents.\n");
    assert_eq!(store.rebuild_index().unwrap(), 3);
}

#[test]
fn every_version_carries_its_quality_and_factors() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    let good = store.put("lib.rs", b"//! Adds.\npub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n#[test]\nfn adds() { assert_eq!(add(1, 2), 3); }\n", meta("code", &[])).unwrap();
    let bad = store.put("broken.rs", b"fn broken( {\n// TODO\n// FIXME\n", meta("code", &[])).unwrap();
    let (g, b) = (good.quality.unwrap(), bad.quality.unwrap());
    assert!(g.score > b.score, "{g:?} vs {b:?}");
    assert!(b.factors.iter().any(|f| f.name == "balanced" && f.value == 0.0 && f.detail.contains("never closed")), "{b:?}");
    // Kept in the history, for the Conductor to learn from.
    let log = store.log("broken.rs").unwrap();
    assert_eq!(log[0].quality.as_ref().unwrap().factors.len(), b.factors.len());
}
