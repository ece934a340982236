//! Retention policies and the sweep plan: a pure function from what the store holds (one
//! `Item` per version) and the time to which blobs move to which tier and which versions are
//! deleted, each with its reason. Nothing a policy keeps is ever in the plan.
//!
//! ```toml
//! [[rule]]                      # rules are tried in order; the first whose `match` fits applies
//! match = "conductor/episodes/*" # `*` any run of characters (including `/`), `?` one
//! keep_latest = 5               # the newest N versions of a name never move and are never deleted
//! warm_after = "7d"             # idle (since last read, else since created) this long → warm
//! cold_after = "30d"            # → cold (object storage)
//! delete_after = "365d"         # → deleted, unless pinned or worth keeping for training
//! pinned = false                # true: nothing this rule matches moves or goes
//! keep_training_value = 0.8     # versions worth at least this for training are never deleted
//! ```
//!
//! A version tagged `pinned` is pinned whatever the rule says. Training value =
//! 0.5 × quality score (0.5 when unscored) + 0.5 × min(1, uses / 3), where uses counts the
//! versions that name this one in their `derived_from` lineage.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct PolicyError {
    pub path: String,
    pub reason: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match", default = "any")]
    pattern: String,
    #[serde(default = "one")]
    keep_latest: u64,
    warm_after: Option<String>,
    cold_after: Option<String>,
    delete_after: Option<String>,
    #[serde(default)]
    pinned: bool,
    #[serde(default = "point_eight")]
    keep_training_value: f64,
}

fn any() -> String {
    "*".to_owned()
}
fn one() -> u64 {
    1
}
fn point_eight() -> f64 {
    0.8
}

/// One rule, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub pattern: Arc<str>,
    pub keep_latest: u64,
    pub warm_after: Option<Duration>,
    pub cold_after: Option<Duration>,
    pub delete_after: Option<Duration>,
    pub pinned: bool,
    pub keep_training_value: f64,
}

/// The rules, in order. With none, everything stays hot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

impl Policy {
    /// Reads the `[[rule]]` tables of a TOML document (other tables are left to the caller);
    /// `path` names the file in errors.
    pub fn from_toml(text: &str, path: &str) -> Result<Self, PolicyError> {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            rule: Vec<RawRule>,
        }
        let bad = |reason: String| PolicyError { path: path.to_owned(), reason };
        let doc: Doc = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut rules = Vec::new();
        for (i, raw) in doc.rule.into_iter().enumerate() {
            let at = |field: &str| format!("rule {} (`{}`), `{field}`", i + 1, raw.pattern);
            let duration = |field: &str, v: &Option<String>| -> Result<Option<Duration>, PolicyError> {
                v.as_deref().map(|s| humantime::parse_duration(s).map_err(|e| bad(format!("{}: `{s}` is not a duration ({e}); write e.g. \"12h\" or \"30d\"", at(field))))).transpose()
            };
            let rule = Rule {
                warm_after: duration("warm_after", &raw.warm_after)?,
                cold_after: duration("cold_after", &raw.cold_after)?,
                delete_after: duration("delete_after", &raw.delete_after)?,
                keep_latest: raw.keep_latest,
                pinned: raw.pinned,
                keep_training_value: raw.keep_training_value,
                pattern: Arc::from(raw.pattern.as_str()),
            };
            if !(0.0..=1.0).contains(&rule.keep_training_value) {
                return Err(bad(format!("{}: {} is outside 0..=1", at("keep_training_value"), rule.keep_training_value)));
            }
            let order = [("warm_after", rule.warm_after), ("cold_after", rule.cold_after), ("delete_after", rule.delete_after)];
            for (i, (a, da)) in order.iter().enumerate() {
                for (b, db) in &order[i + 1..] {
                    if let (Some(da), Some(db)) = (da, db)
                        && da > db
                    {
                        return Err(bad(format!("{}: {a} ({}) comes after {b} ({})", at(a), humantime::format_duration(*da), humantime::format_duration(*db))));
                    }
                }
            }
            rules.push(rule);
        }
        Ok(Self { rules })
    }
}

/// `*` matches any run of characters (including `/`), `?` exactly one.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Where a blob's bytes are, as far as a plan cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Hot,
    Warm,
    Cold,
}

/// One version, as a plan sees it.
#[derive(Clone, Debug)]
pub struct Item {
    pub name: String,
    pub version: u64,
    pub blob: String,
    pub len: u64,
    /// Unix seconds.
    pub created: u64,
    pub last_access: Option<u64>,
    pub level: Level,
    pub quality: Option<f64>,
    /// Versions naming this one in their lineage.
    pub uses: u32,
    /// Tagged `pinned`.
    pub pinned: bool,
    /// 0 for a name's latest version, 1 for the one before, …
    pub rank: u64,
}

/// The training value of a version (see the module docs).
pub fn training_value(quality: Option<f64>, uses: u32) -> f64 {
    0.5 * quality.unwrap_or(0.5) + 0.5 * (f64::from(uses) / 3.0).min(1.0)
}

/// Why a blob moves or a version goes; written out only when shown (a plan of a million
/// records would otherwise spend most of its time formatting).
#[derive(Clone, Debug, PartialEq)]
pub struct Reason {
    /// `warm_after`, `cold_after` or `delete_after`.
    pub trigger: &'static str,
    pub idle: Duration,
    pub after: Duration,
    /// The rule's `match`.
    pub rule: Arc<str>,
    /// For a deletion: the version's training value, and the rule's `keep_training_value`.
    pub training: Option<(f64, f64)>,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "idle {} ≥ {} {} (rule `{}`)", secs(self.idle), self.trigger, secs(self.after), self.rule)?;
        if let Some((value, bar)) = self.training {
            write!(f, ", training value {value:.2} < {bar}")?;
        }
        Ok(())
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A blob to move down a tier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Move {
    pub blob: String,
    pub len: u64,
    pub from: Level,
    pub to: Level,
    /// The versions that point at it, `name@N`.
    pub versions: Vec<String>,
    pub reason: Reason,
}

/// A version to delete.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Delete {
    pub name: String,
    pub version: u64,
    pub blob: String,
    pub len: u64,
    pub reason: Reason,
}

/// What a sweep would do.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    pub moves: Vec<Move>,
    pub deletes: Vec<Delete>,
    /// Versions a rule protects (pinned, among the latest, or worth keeping for training).
    pub protected: usize,
    /// Versions looked at.
    pub versions: usize,
}

/// A duration for a reason line, in whole days or hours (cheap: a plan may hold millions).
fn secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 { format!("{}d", s / 86_400) } else { format!("{}h", s / 3600) }
}

/// Decides, for `items` at `now` (unix seconds), what moves and what goes.
pub fn plan(items: &[Item], policy: &Policy, now: u64) -> Plan {
    let mut out = Plan { versions: items.len(), ..Plan::default() };
    // Per blob: the lowest tier every version pointing at it agrees to, and the item and rule
    // that set it (reasons are written once per move, not per version).
    struct Want {
        level: Level,
        from: Level,
        why: Option<(usize, usize, bool)>,
        versions: Vec<u32>,
    }
    // In first-seen order (so the plan's order follows the items' without a sort), found by
    // blob through a fast hash (blob ids are already uniform).
    let mut wants: Vec<(&str, Want)> = Vec::with_capacity(items.len());
    let mut by_blob: HashMap<&str, u32, rustc_hash::FxBuildHasher> = HashMap::with_capacity_and_hasher(items.len(), rustc_hash::FxBuildHasher);
    let idle_of = |item: &Item| Duration::from_secs(now.saturating_sub(item.last_access.unwrap_or(item.created).max(item.created)));
    for (index, item) in items.iter().enumerate() {
        let rule = policy.rules.iter().position(|r| glob(&r.pattern, &item.name));
        let idle = idle_of(item);
        let mut level = item.level;
        let mut why = None;
        if let Some(r) = rule {
            let rule = &policy.rules[r];
            let protected = rule.pinned || item.pinned || item.rank < rule.keep_latest;
            let value = training_value(item.quality, item.uses);
            if protected {
                out.protected += 1;
            } else if rule.delete_after.is_some_and(|d| idle >= d) && value < rule.keep_training_value {
                out.deletes.push(Delete {
                    name: item.name.clone(),
                    version: item.version,
                    blob: item.blob.clone(),
                    len: item.len,
                    reason: Reason { trigger: "delete_after", idle, after: rule.delete_after.unwrap_or_default(), rule: Arc::clone(&rule.pattern), training: Some((value, rule.keep_training_value)) },
                });
                // A deleted version does not hold its blob anywhere; others pointing at it do.
                continue;
            } else {
                if rule.delete_after.is_some_and(|d| idle >= d) {
                    out.protected += 1;
                }
                if rule.cold_after.is_some_and(|d| idle >= d) {
                    level = level.max(Level::Cold);
                    why = Some((index, r, true));
                } else if rule.warm_after.is_some_and(|d| idle >= d) {
                    level = level.max(Level::Warm);
                    why = Some((index, r, false));
                }
            }
        }
        let slot = *by_blob.entry(item.blob.as_str()).or_insert_with(|| {
            wants.push((item.blob.as_str(), Want { level: Level::Cold, from: item.level, why: None, versions: Vec::new() }));
            (wants.len() - 1) as u32
        });
        let want = &mut wants[slot as usize].1;
        if level < want.level || want.why.is_none() {
            if level < want.level {
                want.level = level;
            }
            want.why = why.or(want.why);
        }
        want.from = want.from.min(item.level);
        want.versions.push(index as u32);
    }
    out.moves.reserve(wants.len());
    for (blob, want) in wants {
        if want.level <= want.from {
            continue;
        }
        // A move always has a why: a level above `from` was set by some version's rule.
        let Some((i, r, cold)) = want.why else { continue };
        let rule = &policy.rules[r];
        let (trigger, after) = if cold { ("cold_after", rule.cold_after) } else { ("warm_after", rule.warm_after) };
        let reason = Reason { trigger, idle: idle_of(&items[i]), after: after.unwrap_or_default(), rule: Arc::clone(&rule.pattern), training: None };
        let versions = want.versions.iter().map(|&i| format!("{}@{}", items[i as usize].name, items[i as usize].version)).collect();
        out.moves.push(Move { blob: blob.to_owned(), len: items[want.versions[0] as usize].len, from: want.from, to: want.level, versions, reason });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, n, m) in [("*", "a/b", true), ("conductor/*", "conductor/episodes/x", true), ("a?c", "abc", true), ("a?c", "ac", false), ("*.md", "docs/x.md", true), ("*.md", "x.rs", false), ("a*b*c", "axxbyyc", true)] {
            assert_eq!(glob(p, n), m, "{p} {n}");
        }
    }
}
