//! `cargo xtask bench dag`: planning and running DAGs, beside Dask's threaded scheduler and
//! Python's graphlib on the same graph, measured in the same run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use symphony_dag::{run, Cancel, Dag, NodeCall, NodeFuture, NodeRunner, NodeSpec, RunOptions};

/// A seeded random DAG: node i depends on up to 4 distinct earlier nodes.
fn random_dag(n: usize, seed: u64) -> Vec<NodeSpec> {
    let mut state = seed;
    let mut next = move || {
        // xorshift64*: plenty for shaping a benchmark graph.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..n)
        .map(|i| {
            let mut node = NodeSpec::new(format!("n{i}"));
            if i > 0 {
                let fan_in = (next() % 5) as usize;
                let mut deps: Vec<usize> = (0..fan_in).map(|_| (next() as usize) % i).collect();
                deps.sort_unstable();
                deps.dedup();
                for d in deps {
                    node = node.after(format!("n{d}"));
                }
            }
            node
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

fn line(name: &str, value: Duration, against: &str, other: Duration) {
    let ratio = other.as_secs_f64() / value.as_secs_f64();
    println!("{name:<44} {:>10}   {against:<40} {:>10}   ratio {ratio:>8.2}x", fmt(value), fmt(other));
}

fn noop() -> Arc<dyn NodeRunner> {
    Arc::new(|_call: NodeCall| -> NodeFuture { Box::pin(async { Ok(String::new()) }) })
}

fn run_once(dag: &Dag, journal: Option<std::path::PathBuf>) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let options = RunOptions { concurrency: 64, journal, run_id: "bench".into(), ..RunOptions::default() };
    let start = Instant::now();
    let report = rt.block_on(run(dag, noop(), options, None, Cancel::default())).unwrap();
    let elapsed = start.elapsed();
    assert!(report.ok());
    elapsed
}

const PEERS: &str = r#"
import json, sys, time, graphlib
edges = json.load(open(sys.argv[1]))
n = len(edges)
def noop(*args):
    return None
best = {}
for _ in range(5):
    ts = graphlib.TopologicalSorter({i: deps for i, deps in enumerate(edges)})
    t = time.perf_counter()
    ts.prepare()
    while ts.is_active():
        ready = ts.get_ready()
        for node in ready:
            noop()
        ts.done(*ready)
    best.setdefault("graphlib", []).append(time.perf_counter() - t)
try:
    import dask.threaded
    dsk = {f"n{i}": (noop, *[f"n{d}" for d in deps]) for i, deps in enumerate(edges)}
    for _ in range(3):
        t = time.perf_counter()
        dask.threaded.get(dsk, list(dsk.keys()))
        best.setdefault("dask", []).append(time.perf_counter() - t)
except ImportError as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(0)
print(json.dumps({k: sorted(v)[len(v) // 2] for k, v in best.items()}))
"#;

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if !filter.is_empty() && !filter.iter().any(|f| "dag plan run".contains(f.as_str())) {
        return;
    }
    println!("symphony DAG benchmarks ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!();
    println!("== plan: validate + Kahn levels + critical path ==");
    let mut plans = Vec::new();
    for n in [10_000usize, 100_000] {
        let spec = random_dag(n, 42);
        let t = median(
            (0..7)
                .map(|_| {
                    let spec = spec.clone();
                    let start = Instant::now();
                    let dag = Dag::build(spec).unwrap();
                    let cp = dag.critical_path(|_| Duration::from_micros(1));
                    std::hint::black_box(cp);
                    start.elapsed()
                })
                .collect(),
        );
        plans.push(t);
        let limit = if n == 10_000 { Duration::from_millis(5) } else { Duration::from_millis(50) };
        line(&format!("plan {n} nodes"), t, &format!("limit {}", fmt(limit)), limit);
    }
    line("plan 10k, scaled ×10 (linear would be equal)", plans[0] * 10, "plan 100k nodes", plans[1]);
    println!();

    println!("== run no-op nodes end to end (random DAG, fan-in ≤ 4, concurrency 64) ==");
    let spec = random_dag(10_000, 7);
    let dag = Dag::build(spec.clone()).unwrap();
    let plain = median((0..5).map(|_| run_once(&dag, None)).collect());
    let dir = tempfile::tempdir().unwrap();
    let journaled = median(
        (0..5)
            .map(|i| run_once(&dag, Some(dir.path().join(format!("j{i}")))))
            .collect(),
    );
    let per_node = plain / 10_000;
    line("per node, 10k nodes", per_node, "limit 5 µs", Duration::from_micros(5));
    line("per node, 10k nodes, checkpointed", journaled / 10_000, "limit: +20 % over unjournaled", per_node * 12 / 10);
    let big = Dag::build(random_dag(100_000, 7)).unwrap();
    let run_big = median((0..3).map(|_| run_once(&big, None)).collect());
    line("per node, 100k nodes", run_big / 100_000, "per node, 10k nodes", per_node);

    let edges: Vec<Vec<usize>> = (0..dag.len()).map(|i| dag.dependencies(i).collect()).collect();
    let graph_file = dir.path().join("graph.json");
    std::fs::write(&graph_file, serde_json_like(&edges)).unwrap();
    let script = dir.path().join("peers.py");
    std::fs::write(&script, PEERS).unwrap();
    match Command::new("python3").arg(&script).arg(&graph_file).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let field = |name: &str| -> Option<Duration> {
                let at = text.find(&format!("\"{name}\": "))? + name.len() + 4;
                let end = text[at..].find([',', '}'])? + at;
                text[at..end].trim().parse::<f64>().ok().map(Duration::from_secs_f64)
            };
            match field("graphlib") {
                Some(t) => line("per node, 10k nodes", per_node, "Python graphlib loop (no execution)", t / 10_000),
                None => println!("graphlib: {text}"),
            }
            match field("dask") {
                Some(t) => line("per node, 10k nodes", per_node, "Dask threaded scheduler", t / 10_000),
                None => println!("dask: not measured ({}) — `pip install dask`", text.trim()),
            }
        }
        Ok(out) => println!("python peers failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => println!("python peers not run: {e}"),
    }
}

/// The edge lists as JSON, without pulling serde_json into the DAG crate for one bench.
fn serde_json_like(edges: &[Vec<usize>]) -> String {
    let rows: Vec<String> = edges
        .iter()
        .map(|deps| format!("[{}]", deps.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")))
        .collect();
    format!("[{}]", rows.join(","))
}
