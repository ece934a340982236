//! Building and validating a DAG: duplicate ids, unknown dependencies, cycles (each one spelled
//! out); Kahn levels; the critical path.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use rustc_hash::FxHashMap as HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why one node depends on another; kept so errors can say where a reference came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dep {
    /// An explicit ordering edge (`after = [...]`).
    After(String),
    /// An input that reads another node's output; `input` names the input.
    Input { node: String, input: String },
}

impl Dep {
    /// The node depended upon.
    pub fn node(&self) -> &str {
        match self {
            Dep::After(n) => n,
            Dep::Input { node, .. } => node,
        }
    }
}

/// One node as the caller describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub id: String,
    pub deps: Vec<Dep>,
    /// Expected duration, for the critical path before anything ran.
    pub estimate: Option<Duration>,
    /// Extra attempts after a failure.
    pub retries: u32,
    /// Time allowed per attempt.
    pub timeout: Option<Duration>,
}

impl NodeSpec {
    /// A node with no dependencies, retries or timeout.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into(), deps: Vec::new(), estimate: None, retries: 0, timeout: None }
    }

    /// Adds an `after` edge.
    pub fn after(mut self, id: impl Into<String>) -> Self {
        self.deps.push(Dep::After(id.into()));
        self
    }
}

/// A problem that stops a graph from running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidationError {
    DuplicateId { id: String },
    UnknownDependency { node: String, dep: Dep },
    /// The nodes on one cycle, in order; the first repeats at the end when printed.
    Cycle { nodes: Vec<String> },
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidationError::DuplicateId { id } => write!(f, "node id `{id}` is used more than once"),
            ValidationError::UnknownDependency { node, dep: Dep::After(d) } => {
                write!(f, "node `{node}` runs after `{d}`, which does not exist")
            }
            ValidationError::UnknownDependency { node, dep: Dep::Input { node: d, input } } => {
                write!(f, "input `{input}` of node `{node}` reads the output of `{d}`, which does not exist")
            }
            ValidationError::Cycle { nodes } => {
                write!(f, "cycle: {}", nodes.join(" → "))?;
                if let Some(first) = nodes.first() {
                    write!(f, " → {first}")?;
                }
                Ok(())
            }
        }
    }
}

/// Every problem found, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A validated, acyclic graph. Node indices are positions in the spec list.
///
/// Adjacency is kept in compressed (CSR) form for the scheduler's hot loops; petgraph is used
/// to find and spell out cycles when there are some.
#[derive(Clone, Debug)]
pub struct Dag {
    nodes: Vec<NodeSpec>,
    ids: Vec<Arc<str>>,
    /// `dependants[dependants_at[i]..dependants_at[i + 1]]` are the nodes that depend on `i`.
    dependants_at: Vec<u32>,
    dependants: Vec<u32>,
    dependencies_at: Vec<u32>,
    dependencies: Vec<u32>,
    /// Kahn levels: every node's dependencies are in earlier levels.
    levels: Vec<Vec<usize>>,
    /// A topological order (levels flattened).
    order: Vec<usize>,
    index: HashMap<Arc<str>, usize>,
}

/// Compressed adjacency from `(from, to)` pairs sorted by `from`.
fn csr(n: usize, edges: &[(u32, u32)]) -> (Vec<u32>, Vec<u32>) {
    let mut at = vec![0u32; n + 1];
    for &(from, _) in edges {
        at[from as usize + 1] += 1;
    }
    for i in 0..n {
        at[i + 1] += at[i];
    }
    (at, edges.iter().map(|&(_, to)| to).collect())
}

fn small(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl Dag {
    /// Validates `nodes` and builds the graph; reports every problem at once.
    pub fn build(nodes: Vec<NodeSpec>) -> Result<Self, ValidationErrors> {
        let n = nodes.len();
        let mut errors = Vec::new();
        let ids: Vec<Arc<str>> = nodes.iter().map(|node| Arc::from(node.id.as_str())).collect();
        let mut index: HashMap<Arc<str>, usize> = HashMap::with_capacity_and_hasher(n, Default::default());
        for (i, id) in ids.iter().enumerate() {
            if index.insert(Arc::clone(id), i).is_some() {
                errors.push(ValidationError::DuplicateId { id: id.to_string() });
            }
        }
        let mut edges: Vec<(u32, u32)> = Vec::with_capacity(n * 2);
        for (i, node) in nodes.iter().enumerate() {
            for dep in &node.deps {
                match index.get(dep.node()) {
                    Some(&d) => edges.push((small(d), small(i))),
                    None => errors.push(ValidationError::UnknownDependency { node: node.id.clone(), dep: dep.clone() }),
                }
            }
        }
        edges.sort_unstable();
        edges.dedup();
        let (dependants_at, dependants) = csr(n, &edges);
        let mut reversed: Vec<(u32, u32)> = edges.iter().map(|&(a, b)| (b, a)).collect();
        reversed.sort_unstable();
        let (dependencies_at, dependencies) = csr(n, &reversed);
        let mut dag = Self {
            nodes,
            ids,
            dependants_at,
            dependants,
            dependencies_at,
            dependencies,
            levels: Vec::new(),
            order: Vec::new(),
            index,
        };
        let leftover = dag.kahn_levels();
        if !leftover.is_empty() {
            errors.extend(cycles(n, &edges, &leftover, &dag.nodes));
        }
        if !errors.is_empty() {
            return Err(ValidationErrors(errors));
        }
        dag.order = dag.levels.iter().flatten().copied().collect();
        Ok(dag)
    }

    /// Kahn's algorithm by levels; returns the nodes never freed (on or behind cycles).
    fn kahn_levels(&mut self) -> Vec<usize> {
        let n = self.nodes.len();
        let mut indegree: Vec<usize> = (0..n).map(|i| self.dependency_count(i)).collect();
        let mut current: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut seen = 0;
        while !current.is_empty() {
            seen += current.len();
            let mut next = Vec::new();
            for &i in &current {
                for d in self.dependants(i) {
                    indegree[d] -= 1;
                    if indegree[d] == 0 {
                        next.push(d);
                    }
                }
            }
            // Declaration order within a level, so plans print the same way every time.
            next.sort_unstable();
            self.levels.push(std::mem::replace(&mut current, next));
        }
        if seen == n { Vec::new() } else { (0..n).filter(|&i| indegree[i] > 0).collect() }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &NodeSpec {
        &self.nodes[i]
    }

    /// The id of node `i`, shared rather than copied.
    pub fn id(&self, i: usize) -> &Arc<str> {
        &self.ids[i]
    }

    pub fn nodes(&self) -> &[NodeSpec] {
        &self.nodes
    }

    /// Index of the node called `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// A fingerprint of the graph's shape (ids and edges), so a checkpoint is only resumed
    /// against the graph that wrote it.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        for n in &self.nodes {
            h.update(n.id.as_bytes());
            h.update(&[0]);
            for d in &n.deps {
                h.update(d.node().as_bytes());
                h.update(&[1]);
            }
            h.update(&[2]);
        }
        *h.finalize().as_bytes()
    }

    pub fn levels(&self) -> &[Vec<usize>] {
        &self.levels
    }

    /// A topological order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Nodes that depend directly on `i`.
    pub fn dependants(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let range = self.dependants_at[i] as usize..self.dependants_at[i + 1] as usize;
        self.dependants[range].iter().map(|&d| d as usize)
    }

    /// Nodes `i` depends on directly.
    pub fn dependencies(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let range = self.dependencies_at[i] as usize..self.dependencies_at[i + 1] as usize;
        self.dependencies[range].iter().map(|&d| d as usize)
    }

    /// How many nodes `i` depends on directly.
    pub fn dependency_count(&self, i: usize) -> usize {
        (self.dependencies_at[i + 1] - self.dependencies_at[i]) as usize
    }

    /// The longest path by `duration` of each node: its total and its nodes, first to last.
    pub fn critical_path(&self, duration: impl Fn(usize) -> Duration) -> (Duration, Vec<usize>) {
        let mut finish = vec![Duration::ZERO; self.nodes.len()];
        let mut via: Vec<Option<usize>> = vec![None; self.nodes.len()];
        for &i in &self.order {
            let (start, from) = self
                .dependencies(i)
                .map(|d| (finish[d], Some(d)))
                .max_by_key(|(t, _)| *t)
                .unwrap_or((Duration::ZERO, None));
            finish[i] = start + duration(i);
            via[i] = from;
        }
        let Some(end) = (0..self.nodes.len()).max_by_key(|&i| finish[i]) else {
            return (Duration::ZERO, Vec::new());
        };
        let mut path = vec![end];
        let mut at = end;
        while let Some(prev) = via[at] {
            path.push(prev);
            at = prev;
        }
        path.reverse();
        (finish[end], path)
    }

    /// The critical path from the nodes' estimates (nodes without one count as zero).
    pub fn estimated_critical_path(&self) -> (Duration, Vec<usize>) {
        self.critical_path(|i| self.nodes[i].estimate.unwrap_or_default())
    }
}

/// One concrete cycle per strongly connected component among the nodes Kahn could not free.
fn cycles(n: usize, edges: &[(u32, u32)], leftover: &[usize], nodes: &[NodeSpec]) -> Vec<ValidationError> {
    let mut graph = DiGraph::<usize, ()>::with_capacity(n, edges.len());
    for i in 0..n {
        graph.add_node(i);
    }
    for &(a, b) in edges {
        graph.add_edge(NodeIndex::new(a as usize), NodeIndex::new(b as usize), ());
    }
    let graph = &graph;
    let leftover: std::collections::HashSet<usize> = leftover.iter().copied().collect();
    let mut out = Vec::new();
    for scc in petgraph::algo::tarjan_scc(graph) {
        let is_cycle = scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
        if !is_cycle || !leftover.contains(&scc[0].index()) {
            continue;
        }
        let members: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
        // Walk from the smallest index inside the component until a node repeats.
        let start = *scc.iter().min().unwrap_or(&scc[0]);
        let mut path = vec![start];
        let mut at = start;
        loop {
            let next = graph
                .neighbors_directed(at, Direction::Outgoing)
                .filter(|n| members.contains(n))
                .min()
                .unwrap_or(start);
            if let Some(pos) = path.iter().position(|&p| p == next) {
                path.drain(..pos);
                break;
            }
            path.push(next);
            at = next;
        }
        out.push(ValidationError::Cycle { nodes: path.into_iter().map(|i| nodes[i.index()].id.clone()).collect() });
    }
    out.sort_by(|a, b| format!("{a}").cmp(&format!("{b}")));
    out
}
