//! Work spread over the machine's cores: compressing and hashing, which dominate a put of a
//! large blob, a compaction and building groups.

/// How many threads to spread CPU work over (up to 8).
pub(crate) fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// `f` over `items` on up to `workers` threads, each taking a contiguous part; the results in
/// the items' order. A panic in `f` is a panic here (a part is never silently missing).
pub(crate) fn map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if workers <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(workers);
    let f = &f;
    std::thread::scope(|s| {
        let parts: Vec<_> = items.chunks(per).map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<R>>())).collect();
        parts.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}
