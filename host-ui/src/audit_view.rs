//! `symphony audit`: the capability audit as a table grouped by caret, or as the stable JSON
//! report (`schema` 1, documented in the README), with an exit code that can gate CI.

use anyhow::Result;
use std::fmt::Write as _;
use symphony_kernel::capability_audit::{AuditReport, CaretAudit, Severity};

/// When `symphony audit` exits non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
}

/// Exit code 2 when a finding at or above `fail_on` exists; else 0.
pub const FINDINGS: u8 = 2;

/// Whether the report should fail the command.
pub fn fails(report: &AuditReport, fail_on: Option<FailOn>) -> bool {
    let threshold = match fail_on {
        None => return false,
        Some(FailOn::Error) => Severity::Error,
        Some(FailOn::Warning) => Severity::Warning,
    };
    report.worst().is_some_and(|w| w >= threshold)
}

pub fn print(report: &AuditReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", render(report));
    }
    Ok(())
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

fn caret(out: &mut String, c: &CaretAudit) -> std::fmt::Result {
    let version = c.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
    let kind = match (&c.kind, &c.world) {
        (Some(k), _) => k.to_string(),
        (None, Some(symphony_kernel::inspect::World::Command)) => "wasi:cli command".to_owned(),
        (None, Some(symphony_kernel::inspect::World::Caret { kind, .. })) => kind.to_string(),
        (None, _) => "component".to_owned(),
    };
    let place = c.path.as_ref().map(|p| format!("  ({})", p.display())).unwrap_or_default();
    writeln!(out, "== {}{version} [{kind}]{place}", c.id)?;
    writeln!(out, "  declared   {}", list(&c.declared))?;
    let granted: Vec<String> = c.granted.iter().map(|g| format!("{} (by {} at {})", g.capability, g.by, g.granted_at)).collect();
    writeln!(out, "  granted    {}", list(&granted))?;
    let reach: Vec<String> = c
        .reachable
        .iter()
        .map(|r| {
            let what = serde_json::to_value(r.reach).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            format!("{what} via {}", r.imports.join(" "))
        })
        .collect();
    writeln!(out, "  reachable  {}", if reach.is_empty() { "nothing beyond stdio, clocks and random".to_owned() } else { reach.join("; ") })?;
    if c.used.is_empty() {
        writeln!(out, "  used       nothing on record")?;
    } else {
        writeln!(out, "  used       {:<36} {:>8} {:>7} {:>7}  {:<24}  targets", "capability", "allowed", "denied", "limited", "last")?;
        for u in &c.used {
            writeln!(
                out,
                "             {:<36} {:>8} {:>7} {:>7}  {:<24}  {}",
                u.capability,
                u.allowed,
                u.denied,
                u.limited,
                u.last_use,
                u.targets.join(", ")
            )?;
        }
    }
    let p = &c.provenance;
    let signed = match (&p.signer, p.trusted) {
        (Some(s), Some(true)) => format!("signed by {s} (trusted)"),
        (Some(s), _) => format!("signed by {s} (NOT trusted)"),
        (None, _) => "unsigned".to_owned(),
    };
    let hash = p.hash.as_deref().map(|h| &h[..h.len().min(16)]).unwrap_or("-");
    writeln!(out, "  provenance blake3 {hash}…, {} bytes, {signed}, API {}", p.size, p.api.as_deref().unwrap_or("-"))?;
    if c.imports.is_empty() && c.exports.is_empty() {
        // Nothing decoded: the finding below says why.
    } else if !matches!(c.world, Some(symphony_kernel::inspect::World::Caret { .. })) {
        writeln!(out, "  imports    {}", list(&c.imports))?;
        writeln!(out, "  exports    {}", list(&c.exports))?;
    }
    if c.findings.is_empty() {
        writeln!(out, "  findings   none")?;
    } else {
        writeln!(out, "  findings")?;
        for f in &c.findings {
            let code = serde_json::to_value(f.code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            writeln!(out, "    {:<8} {code:<28} {}", f.severity.to_string().to_uppercase(), f.message)?;
        }
    }
    writeln!(out)
}

/// The human report.
pub fn render(report: &AuditReport) -> String {
    let mut out = String::new();
    for c in &report.carets {
        let _ = caret(&mut out, c);
    }
    let s = &report.summary;
    let period = report.since.as_deref().map(|t| format!(" since {t}")).unwrap_or_default();
    let _ = writeln!(out, "{} caret(s) audited{period}: {} error(s), {} warning(s), {} note(s)", s.carets, s.errors, s.warnings, s.infos);
    if report.unreadable_log_lines > 0 {
        let _ = writeln!(out, "note: {} audit-log line(s) could not be read and were skipped", report.unreadable_log_lines);
    }
    out
}
