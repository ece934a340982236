//! Human tables and `--json` output of the CLI.

use anyhow::Result;
use serde::Serialize;
use std::path::Path;
use symphony_kernel::audit::BadLine;
use symphony_kernel::{AuditRecord, CallError, CaretStatus, Config};

fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `n` and its noun, plural unless one: "1 name", "2 names".
pub fn count(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

pub fn message(text: &str, json: bool) -> Result<()> {
    if json {
        print_json(&serde_json::json!({ "message": text }))
    } else {
        println!("{text}");
        Ok(())
    }
}

pub fn config(config: &Config, json: bool) -> Result<()> {
    if json {
        return print_json(config);
    }
    print!("{}", toml::to_string(config)?);
    Ok(())
}

pub fn installed(status: &CaretStatus, json: bool) -> Result<()> {
    if json {
        return print_json(status);
    }
    let m = &status.installed.manifest;
    println!("installed {} {} ({}), {} bytes, blake3 {}", m.id, m.version, m.kind, status.installed.size, &status.installed.hash[..16]);
    if m.capabilities.is_empty() {
        println!("  asks for no capabilities");
    } else {
        println!("  asks for: {}", m.capabilities.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
        if status.grants.is_empty() {
            println!("  granted: nothing yet — `symphony caret grant {} <capability>...`", m.id);
        } else {
            println!("  granted: {}", status.grants.iter().map(|g| g.capability.to_string()).collect::<Vec<_>>().join(", "));
        }
    }
    Ok(())
}

pub fn caret_list(list: &[CaretStatus], json: bool) -> Result<()> {
    if json {
        return print_json(list);
    }
    if list.is_empty() {
        println!("no carets installed — `symphony caret install <dir>`");
        return Ok(());
    }
    println!("{:<20} {:<10} {:<11} {:>8} {:>8}  DESCRIPTION", "ID", "VERSION", "KIND", "ASKS", "GRANTED");
    for c in list {
        let m = &c.installed.manifest;
        let mut description = m.description.clone();
        if description.len() > 60 {
            description.truncate(57);
            description.push_str("...");
        }
        println!(
            "{:<20} {:<10} {:<11} {:>8} {:>8}  {}",
            m.id,
            m.version.to_string(),
            m.kind.to_string(),
            m.capabilities.len(),
            c.grants.len(),
            description
        );
    }
    Ok(())
}

pub fn caret_info(c: &CaretStatus, json: bool) -> Result<()> {
    if json {
        return print_json(c);
    }
    let m = &c.installed.manifest;
    println!("{} — {} {}", m.id, m.name, m.version);
    println!("  kind:        {}", m.kind);
    println!("  api:         {}", m.api);
    println!("  description: {}", m.description);
    if !m.authors.is_empty() {
        println!("  authors:     {}", m.authors.join(", "));
    }
    println!("  blake3:      {}", c.installed.hash);
    match &c.installed.provenance {
        Some(p) => println!("  signed by:   {} (key {})", p.signer, p.key),
        None => println!("  signed by:   nobody (installed from a directory or an unsigned package)"),
    }
    println!("  size:        {} bytes", c.installed.size);
    println!("  installed:   {} from {}", c.installed.installed_at, c.installed.source.display());
    println!(
        "  limits:      memory {} MiB, {:?} per call, {} instances",
        m.limits.memory_bytes >> 20,
        m.limits.time,
        m.limits.instances
    );
    println!("  capabilities:");
    if m.capabilities.is_empty() {
        println!("    (asks for none)");
    }
    for cap in &m.capabilities {
        match c.grants.iter().find(|g| &g.capability == cap) {
            Some(g) => println!("    [granted] {cap}  ({} by {})", g.granted_at, g.by),
            None => println!("    [ asked ] {cap}"),
        }
    }
    for g in c.grants.iter().filter(|g| !m.capabilities.contains(&g.capability)) {
        println!("    [granted] {}  ({} by {}; narrows a request)", g.capability, g.granted_at, g.by);
    }
    Ok(())
}

pub fn call_result(answer: &str, json: bool) -> Result<()> {
    if json {
        let value = serde_json::from_str::<serde_json::Value>(answer).unwrap_or_else(|_| serde_json::Value::String(answer.to_owned()));
        return print_json(&serde_json::json!({ "ok": value }));
    }
    match serde_json::from_str::<serde_json::Value>(answer) {
        Ok(v) if v.is_object() || v.is_array() => println!("{}", serde_json::to_string_pretty(&v)?),
        _ => println!("{answer}"),
    }
    Ok(())
}

pub fn call_error(e: &CallError, json: bool) -> Result<()> {
    if json {
        return print_json(&serde_json::json!({ "error": e }));
    }
    eprintln!("error: {e}");
    Ok(())
}

pub fn audit(records: &[AuditRecord], bad: &[BadLine], path: &Path, json: bool) -> Result<()> {
    if json {
        return print_json(&serde_json::json!({
            "records": records,
            "unreadable_lines": bad.iter().map(|b| serde_json::json!({"line": b.line, "reason": b.reason})).collect::<Vec<_>>(),
        }));
    }
    for b in bad {
        eprintln!("warning: {}:{}: unreadable audit line: {}", path.display(), b.line, b.reason);
    }
    if records.is_empty() {
        println!("no audit records in {}", path.display());
        return Ok(());
    }
    for r in records {
        let decision = match r.decision {
            symphony_kernel::Decision::Allowed => "allowed",
            symphony_kernel::Decision::Denied => "DENIED ",
            symphony_kernel::Decision::Limited => "LIMITED",
            symphony_kernel::Decision::Event => "event  ",
        };
        let count = if r.count > 1 { format!(" ×{}", r.count) } else { String::new() };
        let detail = r.detail.as_deref().map(|d| format!("  ({d})")).unwrap_or_default();
        println!(
            "{}  {decision}  {:<22} {:<34} {}{count}{detail}",
            r.time,
            r.principal,
            r.capability.as_deref().unwrap_or("-"),
            r.target
        );
    }
    Ok(())
}
