//! `Symphony.toml`: the caret manifest, parsed and validated with errors that name file, line
//! and field.

use crate::capability::Capability;
use crate::wit::SUPPORTED_API_VERSIONS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The file name a caret directory keeps its manifest under.
pub const MANIFEST_FILE: &str = "Symphony.toml";

/// The three kinds of caret; each is one WIT world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaretKind {
    Instrument,
    Operator,
    Motif,
}

impl CaretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CaretKind::Instrument => "instrument",
            CaretKind::Operator => "operator",
            CaretKind::Motif => "motif",
        }
    }
}

impl fmt::Display for CaretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resource limits applied to every instance of a caret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock budget of one call.
    #[serde(with = "duration_ms")]
    pub time: Duration,
    /// Most instances kept or running at once.
    pub instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory_bytes: 64 * 1024 * 1024, time: Duration::from_secs(5), instances: 4 }
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A validated manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub name: String,
    pub version: semver::Version,
    pub kind: CaretKind,
    /// The WIT API version the caret is built against.
    pub api: semver::Version,
    /// The component file, relative to the manifest's directory.
    pub component: PathBuf,
    pub description: String,
    pub authors: Vec<String>,
    /// What the caret asks for; grants may only narrow these.
    pub capabilities: Vec<Capability>,
    pub limits: Limits,
    /// Other carets this one needs, by id, with a semver requirement.
    pub dependencies: BTreeMap<String, semver::VersionReq>,
}

/// A manifest that failed to parse or validate, located to the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {}{message}", file.display(), field.as_ref().map(|f| format!("`{f}`: ")).unwrap_or_default())]
pub struct ManifestError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The dotted key at fault, e.g. `caret.version`.
    pub field: Option<String>,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    caret: RawCaret,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    dependencies: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaret {
    id: Spanned<String>,
    name: Spanned<String>,
    version: Spanned<String>,
    kind: Spanned<String>,
    api: Spanned<String>,
    component: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    request: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory: Option<Spanned<String>>,
    time: Option<Spanned<String>>,
    instances: Option<Spanned<i64>>,
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

/// Parses `64MiB`, `512KiB`, `1GiB`, `1048576`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a size like `64MiB`"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}` (use B, KiB, MiB, GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses `500ms`, `5s`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a duration like `5s`"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" | "min" => Ok(Duration::from_secs(n.saturating_mul(60))),
        other => Err(format!("unknown duration unit `{other}` (use ms, s, m)")),
    }
}

/// Whether `id` is a valid caret id: lower-case letters, digits and `-`, starting with a letter.
pub fn is_valid_id(id: &str) -> bool {
    (2..=64).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-')
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Validates manifest `text`; `file` is only used to name the source in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ManifestError> {
        let at = |span: std::ops::Range<usize>, field: &str, message: String| {
            let (line, column) = line_col(text, span.start);
            ManifestError { file: file.to_path_buf(), line, column, field: Some(field.to_owned()), message }
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ManifestError {
                file: file.to_path_buf(),
                line,
                column,
                field: None,
                message: e.message().trim().to_owned(),
            }
        })?;
        let c = &raw.caret;

        if !is_valid_id(c.id.get_ref()) {
            return Err(at(
                c.id.span(),
                "caret.id",
                format!(
                    "`{}` is not a valid id: 2-64 lower-case letters, digits and `-`, starting with a letter",
                    c.id.get_ref()
                ),
            ));
        }
        if c.name.get_ref().trim().is_empty() {
            return Err(at(c.name.span(), "caret.name", "must not be empty".to_owned()));
        }
        let version = semver::Version::parse(c.version.get_ref()).map_err(|e| {
            at(c.version.span(), "caret.version", format!("`{}` is not semver: {e}", c.version.get_ref()))
        })?;
        let kind = match c.kind.get_ref().as_str() {
            "instrument" => CaretKind::Instrument,
            "operator" => CaretKind::Operator,
            "motif" => CaretKind::Motif,
            other => {
                return Err(at(
                    c.kind.span(),
                    "caret.kind",
                    format!("`{other}` is not a kind: use instrument, operator or motif"),
                ));
            }
        };
        let api = semver::Version::parse(c.api.get_ref())
            .map_err(|e| at(c.api.span(), "caret.api", format!("`{}` is not semver: {e}", c.api.get_ref())))?;
        if !SUPPORTED_API_VERSIONS.iter().any(|v| *v == c.api.get_ref()) {
            return Err(at(
                c.api.span(),
                "caret.api",
                format!("API {api} is not supported by this kernel (supported: {})", SUPPORTED_API_VERSIONS.join(", ")),
            ));
        }
        let component = PathBuf::from(c.component.get_ref());
        if c.component.get_ref().is_empty()
            || component.is_absolute()
            || component.components().any(|p| matches!(p, std::path::Component::ParentDir))
        {
            return Err(at(
                c.component.span(),
                "caret.component",
                "must be a relative path inside the caret directory".to_owned(),
            ));
        }

        let mut capabilities = Vec::new();
        for (i, req) in raw.capabilities.request.iter().enumerate() {
            let cap: Capability = req
                .get_ref()
                .parse()
                .map_err(|e: crate::capability::CapabilityParseError| {
                    at(req.span(), &format!("capabilities.request[{i}]"), e.reason)
                })?;
            if !capabilities.contains(&cap) {
                capabilities.push(cap);
            }
        }

        let mut limits = Limits::default();
        if let Some(m) = &raw.limits.memory {
            limits.memory_bytes = parse_size(m.get_ref()).map_err(|e| at(m.span(), "limits.memory", e))?;
            if limits.memory_bytes < 1 << 20 {
                return Err(at(m.span(), "limits.memory", "must be at least 1MiB".to_owned()));
            }
        }
        if let Some(t) = &raw.limits.time {
            limits.time = parse_duration(t.get_ref()).map_err(|e| at(t.span(), "limits.time", e))?;
            if limits.time.is_zero() {
                return Err(at(t.span(), "limits.time", "must be more than zero".to_owned()));
            }
        }
        if let Some(n) = &raw.limits.instances {
            limits.instances = u32::try_from(*n.get_ref())
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| at(n.span(), "limits.instances", "must be between 1 and 256".to_owned()))?;
        }

        let mut dependencies = BTreeMap::new();
        for (dep, req) in &raw.dependencies {
            let field = format!("dependencies.{dep}");
            if !is_valid_id(dep) {
                return Err(at(req.span(), &field, format!("`{dep}` is not a valid caret id")));
            }
            let parsed = semver::VersionReq::parse(req.get_ref())
                .map_err(|e| at(req.span(), &field, format!("`{}` is not a semver requirement: {e}", req.get_ref())))?;
            dependencies.insert(dep.clone(), parsed);
        }

        Ok(Manifest {
            id: c.id.get_ref().clone(),
            name: c.name.get_ref().trim().to_owned(),
            version,
            kind,
            api,
            component,
            description: c.description.clone().unwrap_or_default(),
            authors: c.authors.clone(),
            capabilities,
            limits,
            dependencies,
        })
    }
}
