//! The capability audit: for each caret, what it **may** do (declared in its manifest, granted
//! by a person), what it **can** reach (decoded from the component binary itself, not from the
//! manifest), what it **did** (the audit log), and where it came from — with findings graded
//! by severity. `symphony audit` prints it; the `pit/audit` service serves the same report.
//!
//! The JSON form is a stable interface (`schema` = [`REPORT_SCHEMA`]): fields are only ever
//! added; their meaning does not change within a schema number.

use crate::audit::{AuditRecord, Decision};
use crate::capability::Capability;
use crate::inspect::{self, ComponentInfo, Reach, World};
use crate::manifest::{CaretKind, Manifest};
use crate::audit::AuditLog;
use crate::package::{PackageError, Verified};
use crate::registry::{self, GrantRecord, InstalledCaret, Registry};
use crate::trust::TrustStore;
use crate::KernelError;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The version of the report's JSON shape.
pub const REPORT_SCHEMA: u32 = 1;

/// How many distinct targets a use lists (the most frequent first).
const TARGETS_SHOWN: usize = 5;

/// How serious a finding is; `--fail-on` compares against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Worth knowing; never fails an audit.
    Info,
    /// Deserves a look: unused or wildcard grants, denials, missing signatures.
    Warning,
    /// The caret can do, or has been let do, more than it declared.
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// What kind of finding; the kebab-case name is part of the JSON schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    /// The binary imports an interface its manifest declares no capability for.
    UndeclaredImport,
    /// The binary imports an interface this kernel does not provide (it cannot be linked).
    UnknownImport,
    /// The binary's world or API version is not what the manifest says.
    WorldMismatch,
    /// A grant that no declared capability covers (e.g. a hand-edited grants file).
    GrantWiderThanManifest,
    /// A grant with a wildcard.
    WildcardGrant,
    /// A grant that was not used during the period audited.
    UnusedGrant,
    /// The caret tried things it was not granted.
    DeniedAttempts,
    /// The caret hit its time or memory limit.
    LimitHits,
    /// No signature: nobody vouches for these bytes.
    Unsigned,
    /// Signed by a key this home does not trust.
    UntrustedSigner,
    /// The package's contents do not match its signed hash, or the signature is invalid.
    BadSignature,
    /// The binary could not be read as a component.
    MalformedComponent,
    /// The component matches no Symphony world (reported with its imports and exports).
    UnknownWorld,
    /// A plain `wasi:cli` command: it gets capabilities per run, not from grants.
    Command,
}

/// One thing the audit wants a person to know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: FindingCode,
    pub message: String,
    /// The capability (or import) concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// How many times, for counted findings (denials, limit hits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl Finding {
    fn new(severity: Severity, code: FindingCode, message: impl Into<String>) -> Self {
        Self { severity, code, message: message.into(), capability: None, count: None }
    }
    fn about(mut self, capability: impl Into<String>) -> Self {
        self.capability = Some(capability.into());
        self
    }
    fn counted(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }
}

/// A capability family the binary can reach, with the imports that reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reachable {
    pub reach: Reach,
    /// The capability a manifest must declare for it, where one is needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declare: Option<&'static str>,
    pub imports: Vec<String>,
}

/// What the audit log says a caret did with one capability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Use {
    /// The capability (or limit, `limits.time`) as recorded.
    pub capability: String,
    pub allowed: u64,
    pub denied: u64,
    pub limited: u64,
    /// RFC 3339 time of the latest record.
    pub last_use: String,
    /// The most frequent targets (files, addresses, commands, callees).
    pub targets: Vec<String>,
}

/// Where the bytes came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProvenanceReport {
    /// BLAKE3 of the component, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    pub size: u64,
    pub signed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The signing key, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Whether this home trusts the key (absent when unsigned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted: Option<bool>,
    /// The WIT API version the binary was built against, read from its exports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

/// What was audited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectKind {
    /// An installed caret.
    Installed,
    /// A `.caret` package file.
    Package,
    /// A caret directory (`Symphony.toml` and the built component).
    Directory,
    /// A bare `.wasm` component file.
    Component,
}

/// The audit of one caret (or one file).
#[derive(Clone, Debug, Serialize)]
pub struct CaretAudit {
    pub subject: SubjectKind,
    /// The caret id (for a bare component: its file name).
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<CaretKind>,
    /// The world the binary implements (absent when it could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub world: Option<World>,
    /// Capabilities in the manifest.
    pub declared: Vec<String>,
    /// Current grants, with when and by whom.
    pub granted: Vec<GrantRecord>,
    /// What the binary's imports let it reach.
    pub reachable: Vec<Reachable>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// What it did, per capability, in the period.
    pub used: Vec<Use>,
    pub provenance: ProvenanceReport,
    /// Most severe first.
    pub findings: Vec<Finding>,
}

impl CaretAudit {
    /// The most severe finding, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Totals over a report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub carets: usize,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

/// A whole audit.
#[derive(Clone, Debug, Serialize)]
pub struct AuditReport {
    pub schema: u32,
    /// RFC 3339 time the report was made.
    pub generated_at: String,
    /// Audit-log records before this time were not considered (absent: the whole log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Lines of the audit log that could not be read.
    pub unreadable_log_lines: usize,
    pub carets: Vec<CaretAudit>,
    pub summary: Summary,
}

impl AuditReport {
    /// Assembles a report; carets keep the order given.
    pub fn new(carets: Vec<CaretAudit>, since: Option<String>, unreadable_log_lines: usize) -> Self {
        let mut summary = Summary { carets: carets.len(), ..Summary::default() };
        for f in carets.iter().flat_map(|c| &c.findings) {
            match f.severity {
                Severity::Error => summary.errors += 1,
                Severity::Warning => summary.warnings += 1,
                Severity::Info => summary.infos += 1,
            }
        }
        Self {
            schema: REPORT_SCHEMA,
            generated_at: crate::audit::now_rfc3339(),
            since,
            unreadable_log_lines,
            carets,
            summary,
        }
    }

    /// The most severe finding in the whole report.
    pub fn worst(&self) -> Option<Severity> {
        self.carets.iter().filter_map(CaretAudit::worst).max()
    }
}

/// The audit log, read once and grouped by the caret that acted.
#[derive(Debug, Default)]
pub struct UsageIndex {
    by_caret: HashMap<String, Vec<Use>>,
}

impl UsageIndex {
    /// Groups `records` (those at or after `since`, an RFC 3339 time, when given) by acting caret
    /// and capability.
    pub fn build(records: &[AuditRecord], since: Option<&str>) -> Self {
        #[derive(Default)]
        struct Acc {
            allowed: u64,
            denied: u64,
            limited: u64,
            last: String,
            targets: HashMap<String, u64>,
        }
        let mut acc: HashMap<&str, BTreeMap<&str, Acc>> = HashMap::new();
        for r in records {
            // Timestamps share one format (UTC, milliseconds), so text order is time order.
            if since.is_some_and(|s| r.time.as_str() < s) {
                continue;
            }
            // A limit stops the callee, whoever called it; anything else is the acting caret's.
            let actor = match r.decision {
                Decision::Limited => r.caret.as_deref(),
                Decision::Event => continue,
                _ => r.principal.strip_prefix("caret:"),
            };
            let Some(caret) = actor else { continue };
            let a = acc.entry(caret).or_default().entry(r.capability.as_deref().unwrap_or("-")).or_default();
            match r.decision {
                Decision::Allowed => a.allowed += r.count,
                Decision::Denied => a.denied += r.count,
                Decision::Limited => a.limited += r.count,
                Decision::Event => {}
            }
            if r.time > a.last {
                a.last.clone_from(&r.time);
            }
            *a.targets.entry(r.target.clone()).or_default() += r.count;
        }
        let by_caret = acc
            .into_iter()
            .map(|(caret, uses)| {
                let uses = uses
                    .into_iter()
                    .map(|(capability, a)| {
                        let mut targets: Vec<(String, u64)> = a.targets.into_iter().collect();
                        targets.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
                        Use {
                            capability: capability.to_owned(),
                            allowed: a.allowed,
                            denied: a.denied,
                            limited: a.limited,
                            last_use: a.last,
                            targets: targets.into_iter().take(TARGETS_SHOWN).map(|(t, _)| t).collect(),
                        }
                    })
                    .collect();
                (caret.to_owned(), uses)
            })
            .collect();
        Self { by_caret }
    }

    fn uses(&self, caret: &str) -> Vec<Use> {
        self.by_caret.get(caret).cloned().unwrap_or_default()
    }
}

/// What is known about one subject before judging it.
#[derive(Debug, Default)]
pub struct Evidence {
    pub manifest: Option<Manifest>,
    /// The component bytes' inspection, or why they could not be read.
    pub component: Option<Result<ComponentInfo, String>>,
    pub grants: Vec<GrantRecord>,
    pub uses: Vec<Use>,
    pub provenance: ProvenanceReport,
    /// A package whose signature does not hold.
    pub bad_signature: Option<String>,
}

/// Gathers the evidence for an installed caret. `trusted` answers whether a key is trusted.
/// `component` is the installed bytes, or why they could not be read.
pub fn installed_evidence(
    installed: &InstalledCaret,
    component: Result<&[u8], String>,
    grants: Vec<GrantRecord>,
    usage: &UsageIndex,
    trusted: &dyn Fn(&str) -> bool,
) -> Evidence {
    let info = component.and_then(|bytes| inspect::inspect(bytes).map_err(|e| e.to_string()));
    let signed_by = installed.provenance.as_ref().map(|p| (p.key.as_str(), p.signer.as_str()));
    let provenance = ProvenanceReport::of(installed.hash.clone(), installed.size, signed_by, trusted, &info);
    Evidence {
        manifest: Some(installed.manifest.clone()),
        component: Some(info),
        grants,
        uses: usage.uses(&installed.manifest.id),
        provenance,
        bad_signature: None,
    }
}

/// Gathers the evidence for a `.caret` package file. A package that does not verify is still
/// audited (from its unverified contents) with a `bad-signature` finding; one that cannot be
/// read at all is reported as malformed.
pub fn package_evidence(path: &Path, trusted: &dyn Fn(&str) -> bool) -> Result<Evidence, crate::KernelError> {
    let bytes = std::fs::read(path).map_err(|e| crate::KernelError::io(path, e))?;
    let malformed = |why: String| Evidence { component: Some(Err(why)), ..Evidence::default() };
    let package = match crate::package::Package::from_tar(&bytes, path) {
        Ok(p) => p,
        Err(e) => return Ok(malformed(e.to_string())),
    };
    let unverified = (package.manifest_text.clone(), package.component.clone(), package.signature.clone());
    let (manifest, component, signed_by, bad) = match package.verify(path) {
        Ok(Verified { manifest, component, signed_by, .. }) => (manifest, component, signed_by, None),
        Err(e @ (PackageError::Tampered { .. } | PackageError::BadSignature { .. })) => {
            let (text, component, signature) = unverified;
            match Manifest::parse(&text, &path.join(crate::manifest::MANIFEST_FILE)) {
                Ok(manifest) => (manifest, component, signature.map(|s| (s.key, s.signer)), Some(e.to_string())),
                Err(m) => return Ok(malformed(m.to_string())),
            }
        }
        Err(e) => return Ok(malformed(e.to_string())),
    };
    let info = inspect::inspect(&component).map_err(|e| e.to_string());
    let signed_by = signed_by.as_ref().map(|(k, s)| (k.as_str(), s.as_str()));
    let provenance = ProvenanceReport::of(registry::content_hash(&component), component.len() as u64, signed_by, trusted, &info);
    Ok(Evidence { manifest: Some(manifest), component: Some(info), provenance, bad_signature: bad, ..Evidence::default() })
}

/// Gathers the evidence for a caret directory (`Symphony.toml` and its built component), as an
/// author has it before packing: unsigned by nature.
pub fn directory_evidence(manifest: Manifest, component: &[u8]) -> Evidence {
    Evidence { manifest: Some(manifest), ..component_evidence(component) }
}

/// Gathers the evidence for a bare component (no manifest, no signature).
pub fn component_evidence(bytes: &[u8]) -> Evidence {
    let info = inspect::inspect(bytes).map_err(|e| e.to_string());
    let provenance = ProvenanceReport::of(registry::content_hash(bytes), bytes.len() as u64, None, &|_| false, &info);
    Evidence { component: Some(info), provenance, ..Evidence::default() }
}

impl ProvenanceReport {
    /// The provenance of bytes with this hash and size, signed by `(key, signer)` if at all.
    fn of(hash: String, size: u64, signed_by: Option<(&str, &str)>, trusted: &dyn Fn(&str) -> bool, info: &Result<ComponentInfo, String>) -> Self {
        Self {
            hash: Some(hash),
            size,
            signed: signed_by.is_some(),
            signer: signed_by.map(|(_, s)| s.to_owned()),
            key: signed_by.map(|(k, _)| k.to_owned()),
            trusted: signed_by.map(|(k, _)| trusted(k)),
            api: api_of(info),
        }
    }
}

fn api_of(info: &Result<ComponentInfo, String>) -> Option<String> {
    match info {
        Ok(ComponentInfo { world: World::Caret { api, .. }, .. }) => Some(api.clone()),
        _ => None,
    }
}

/// Groups imports by what they reach (baseline interfaces left out).
fn reachable(info: &ComponentInfo) -> Vec<Reachable> {
    let mut out: Vec<Reachable> = Vec::new();
    for import in &info.imports {
        let reach = inspect::reach_of(import);
        if reach == Reach::Baseline {
            continue;
        }
        match out.iter_mut().find(|r| r.reach == reach) {
            Some(r) => r.imports.push(import.clone()),
            None => out.push(Reachable { reach, declare: reach.required_declaration(), imports: vec![import.clone()] }),
        }
    }
    out
}

/// Judges the evidence: the report for one subject, findings most severe first.
pub fn audit(subject: SubjectKind, id: &str, path: Option<PathBuf>, evidence: Evidence) -> CaretAudit {
    let Evidence { manifest, component, grants, uses, provenance, bad_signature } = evidence;
    let mut findings = Vec::new();
    let (mut world, mut imports, mut exports, mut reach) = (None, Vec::new(), Vec::new(), Vec::new());
    match component {
        Some(Ok(info)) => {
            reach = reachable(&info);
            for r in reach.iter().filter(|r| r.reach == Reach::Unknown) {
                for import in &r.imports {
                    findings.push(
                        Finding::new(Severity::Warning, FindingCode::UnknownImport, format!("imports `{import}`, which this kernel does not provide; it will not link"))
                            .about(import.clone()),
                    );
                }
            }
            match (&info.world, &manifest) {
                (World::Unknown, _) => findings.push(Finding::new(
                    if manifest.is_some() { Severity::Error } else { Severity::Info },
                    FindingCode::UnknownWorld,
                    format!(
                        "matches no Symphony world; exports: {}",
                        if info.exports.is_empty() { "nothing".to_owned() } else { info.exports.join(", ") }
                    ),
                )),
                (World::Command, None) => findings.push(Finding::new(
                    Severity::Info,
                    FindingCode::Command,
                    "a wasi:cli command: it runs with `symphony run-command` and gets capabilities per run",
                )),
                _ => {}
            }
            if let Some(m) = &manifest {
                match registry::world_mismatch(m, &info) {
                    Some(e) if !matches!(info.world, World::Unknown) => {
                        findings.push(Finding::new(Severity::Error, FindingCode::WorldMismatch, e.to_string()));
                    }
                    _ => {}
                }
                for (import, declare) in registry::undeclared_imports(m, &info) {
                    findings.push(
                        Finding::new(Severity::Error, FindingCode::UndeclaredImport, format!("imports `{import}` but the manifest declares no `{declare}` capability"))
                            .about(import),
                    );
                }
            }
            world = Some(info.world);
            imports = info.imports;
            exports = info.exports;
        }
        Some(Err(e)) => findings.push(Finding::new(Severity::Error, FindingCode::MalformedComponent, format!("not a readable component: {e}"))),
        None => {}
    }

    let declared: Vec<Capability> = manifest.as_ref().map(|m| m.capabilities.clone()).unwrap_or_default();
    let used: Vec<(Option<Capability>, &Use)> = uses.iter().map(|u| (u.capability.parse::<Capability>().ok(), u)).collect();
    for g in &grants {
        let cap = &g.capability;
        if manifest.is_some() && !declared.iter().any(|d| d.covers(cap)) {
            findings.push(
                Finding::new(Severity::Error, FindingCode::GrantWiderThanManifest, format!("granted `{cap}`, which the manifest does not ask for"))
                    .about(cap.to_string()),
            );
        }
        if cap.is_wildcard() {
            findings.push(Finding::new(Severity::Warning, FindingCode::WildcardGrant, format!("`{cap}` is a wildcard grant")).about(cap.to_string()));
        }
        let was_used = used.iter().any(|(c, u)| u.allowed > 0 && c.as_ref().is_some_and(|c| cap.covers(c)));
        if !was_used {
            findings.push(
                Finding::new(Severity::Warning, FindingCode::UnusedGrant, format!("`{cap}` was granted but not used in the period"))
                    .about(cap.to_string()),
            );
        }
    }
    for u in &uses {
        if u.denied > 0 {
            findings.push(
                Finding::new(Severity::Warning, FindingCode::DeniedAttempts, format!("{} denied attempt(s) needing `{}`, last {}", u.denied, u.capability, u.last_use))
                    .about(u.capability.clone())
                    .counted(u.denied),
            );
        }
        if u.limited > 0 {
            findings.push(
                Finding::new(Severity::Warning, FindingCode::LimitHits, format!("stopped {} time(s) by `{}`", u.limited, u.capability))
                    .about(u.capability.clone())
                    .counted(u.limited),
            );
        }
    }
    match (&bad_signature, provenance.signed, provenance.trusted) {
        (Some(why), _, _) => findings.push(Finding::new(Severity::Error, FindingCode::BadSignature, why.clone())),
        (None, false, _) => findings.push(Finding::new(Severity::Warning, FindingCode::Unsigned, "not signed: nobody vouches for these bytes")),
        (None, true, Some(false)) => findings.push(Finding::new(
            Severity::Warning,
            FindingCode::UntrustedSigner,
            format!(
                "signed by {} with a key this home does not trust ({})",
                provenance.signer.as_deref().unwrap_or("?"),
                provenance.key.as_deref().unwrap_or("?")
            ),
        )),
        _ => {}
    }
    // Most severe first; the order of equal ones is the order found.
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));

    CaretAudit {
        subject,
        id: id.to_owned(),
        path,
        version: manifest.as_ref().map(|m| m.version.to_string()),
        kind: manifest.as_ref().map(|m| m.kind),
        world,
        declared: declared.iter().map(ToString::to_string).collect(),
        granted: grants,
        reachable: reach,
        imports,
        exports,
        used: uses,
        provenance,
        findings,
    }
}

/// What to audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditSubject {
    /// Every installed caret.
    Installed,
    /// One installed caret.
    Caret(String),
    /// A `.caret` package, a caret directory, or a `.wasm` component.
    File(PathBuf),
}

/// Builds the report for `subject` from a home's registry, grants, trust store and audit log.
/// `since` limits which audit-log records count as use.
pub(crate) fn report(
    registry: &Registry,
    log: &AuditLog,
    subject: &AuditSubject,
    since: Option<std::time::Duration>,
) -> Result<AuditReport, KernelError> {
    let trust = TrustStore::new(registry.layout().trusted_keys());
    let keys: Vec<String> = trust.list()?.into_iter().map(|k| k.key).collect();
    let trusted = |key: &str| keys.iter().any(|k| k == key);
    let cutoff = since.map(|d| {
        let at = std::time::SystemTime::now().checked_sub(d).unwrap_or(std::time::UNIX_EPOCH);
        humantime::format_rfc3339_millis(at).to_string()
    });
    let installed_report = |installed: &[InstalledCaret]| -> Result<(Vec<CaretAudit>, usize), KernelError> {
        log.flush();
        let (records, bad) = AuditLog::read(log.path()).map_err(|e| KernelError::io(log.path(), e))?;
        let usage = UsageIndex::build(&records, cutoff.as_deref());
        let mut out = Vec::with_capacity(installed.len());
        for caret in installed {
            let path = caret.component_path(registry.layout());
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()));
            let grants = registry.grant_records(&caret.manifest.id)?;
            let evidence = installed_evidence(caret, bytes.as_deref().map_err(Clone::clone), grants, &usage, &trusted);
            out.push(audit(SubjectKind::Installed, &caret.manifest.id, None, evidence));
        }
        Ok((out, bad.len()))
    };
    let (carets, bad) = match subject {
        AuditSubject::Installed => installed_report(&registry.list()?)?,
        AuditSubject::Caret(id) => installed_report(&[registry.get(id)?])?,
        AuditSubject::File(path) => {
            let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
            let audited = if path.is_dir() {
                let (manifest, _, bytes) = Registry::read_caret_dir(path)?;
                let id = manifest.id.clone();
                audit(SubjectKind::Directory, &id, Some(path.clone()), directory_evidence(manifest, &bytes))
            } else if path.extension().is_some_and(|e| e == "caret") {
                let evidence = package_evidence(path, &trusted)?;
                let id = evidence.manifest.as_ref().map_or(name, |m| m.id.clone());
                audit(SubjectKind::Package, &id, Some(path.clone()), evidence)
            } else {
                let bytes = std::fs::read(path).map_err(|e| KernelError::io(path, e))?;
                audit(SubjectKind::Component, &name, Some(path.clone()), component_evidence(&bytes))
            };
            (vec![audited], 0)
        }
    };
    Ok(AuditReport::new(carets, cutoff, bad))
}

/// The audit as a proxy service (register it as `pit/audit`): op `report` with
/// `{"caret": "<id>"?, "since": "7d"?}` answers the same JSON as `symphony audit --json`.
/// Only installed carets can be audited this way: a caller cannot make the kernel read files.
#[derive(Debug)]
pub struct AuditService {
    kernel: crate::WeakKernel,
}

impl AuditService {
    pub fn new(kernel: &crate::Kernel) -> Self {
        Self { kernel: kernel.downgrade() }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportRequest {
    caret: Option<String>,
    since: Option<String>,
}

impl crate::Service for AuditService {
    fn name(&self) -> &str {
        "audit"
    }

    fn call(&self, _principal: &crate::Principal, op: &str, payload: &str) -> Result<String, crate::CallError> {
        use crate::{CallError, ErrorCode};
        if op != "report" {
            return Err(CallError::new(ErrorCode::NotFound, format!("pit/audit has no op `{op}`; it has `report`")));
        }
        let payload = if payload.trim().is_empty() { "{}" } else { payload };
        let req: ReportRequest = serde_json::from_str(payload)
            .map_err(|e| CallError::new(ErrorCode::InvalidInput, format!("pit/audit report: {e}; expected {{\"caret\"?: id, \"since\"?: \"7d\"}}")))?;
        let since = match &req.since {
            Some(s) => Some(
                humantime::parse_duration(s)
                    .map_err(|e| CallError::new(ErrorCode::InvalidInput, format!("`since`: {e} (e.g. \"7d\", \"12h\")")))?,
            ),
            None => None,
        };
        let kernel = self.kernel.upgrade().ok_or_else(|| CallError::new(ErrorCode::Internal, "the kernel is shutting down"))?;
        let subject = req.caret.map_or(AuditSubject::Installed, AuditSubject::Caret);
        let report = kernel.audit_report(&subject, since).map_err(|e| match e {
            KernelError::NotInstalled(id) => CallError::new(ErrorCode::NotFound, format!("no caret `{id}` is installed")),
            other => CallError::new(ErrorCode::Internal, other.to_string()),
        })?;
        serde_json::to_string(&report).map_err(|e| CallError::new(ErrorCode::Internal, e.to_string()))
    }
}
