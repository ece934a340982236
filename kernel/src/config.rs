//! Configuration: one TOML file, overridden by `SYMPHONY_*` environment variables, overridden
//! by command-line `--set key=value`; every value validated with errors naming the key.

use crate::error::KernelError;
use crate::manifest::line_col;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `symphony_kernel=debug` …
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "warn".to_owned(), format: LogFormat::Text }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelConfig {
    /// Use wasmtime's pooling allocator for caret instances.
    pub pooling: bool,
    /// Allowed uses are written to the audit log at first use and then every n-th time.
    pub audit_sample: u64,
    /// How often the epoch ticks; per-call time limits are enforced to this granularity.
    pub epoch_tick_ms: u64,
    /// Keep compiled components on disk so a restart loads without recompiling.
    pub compiled_cache: bool,
}

impl Default for KernelConfig {
    fn default() -> Self {
        // Pooling measured slower than on-demand allocation for carets of this size on the
        // reference machine (BENCHMARKS.md), so it is opt-in.
        Self { pooling: false, audit_sample: 1000, epoch_tick_ms: 10, compiled_cache: true }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub log: LogConfig,
    pub kernel: KernelConfig,
}

/// The keys `set` understands, with their environment variable.
pub const KEYS: &[(&str, &str)] = &[
    ("log.level", "SYMPHONY_LOG_LEVEL"),
    ("log.format", "SYMPHONY_LOG_FORMAT"),
    ("kernel.pooling", "SYMPHONY_POOLING"),
    ("kernel.audit_sample", "SYMPHONY_AUDIT_SAMPLE"),
    ("kernel.epoch_tick_ms", "SYMPHONY_EPOCH_TICK_MS"),
    ("kernel.compiled_cache", "SYMPHONY_COMPILED_CACHE"),
];

fn config_error(key: &str, message: impl Into<String>) -> KernelError {
    KernelError::Config { key: key.to_owned(), message: message.into(), source_file: None }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, KernelError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(config_error(key, format!("`{value}` is not a boolean (true/false)"))),
    }
}

fn parse_positive(key: &str, value: &str, max: u64) -> Result<u64, KernelError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| config_error(key, format!("`{value}` is not a whole number from 1 to {max}")))
}

impl Config {
    /// The file under a home directory that holds the configuration.
    pub fn file_in(home: &Path) -> PathBuf {
        home.join("config.toml")
    }

    /// Reads `path` if it exists (defaults otherwise), then applies environment overrides.
    pub fn load(path: &Path) -> Result<Self, KernelError> {
        let mut config = match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => return Err(KernelError::io(path, e)),
        };
        for (key, var) in KEYS {
            if let Ok(value) = std::env::var(var) {
                config.set(key, &value).map_err(|e| match e {
                    KernelError::Config { key, message, .. } => {
                        config_error(&key, format!("{message} (from ${var})"))
                    }
                    other => other,
                })?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; errors carry the file and line.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KernelError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_col(text, s.start).0);
            KernelError::Config {
                key: format!("line {line}"),
                message: e.message().trim().to_owned(),
                source_file: Some(path.to_path_buf()),
            }
        })?;
        config.validate().map_err(|e| match e {
            KernelError::Config { key, message, .. } => {
                KernelError::Config { key, message, source_file: Some(path.to_path_buf()) }
            }
            other => other,
        })?;
        Ok(config)
    }

    /// Sets one dotted key from text (an environment variable or `--set key=value`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), KernelError> {
        match key {
            "log.level" => self.log.level = value.to_owned(),
            "log.format" => {
                self.log.format = match value {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(config_error(key, format!("`{value}` is not `text` or `json`"))),
                }
            }
            "kernel.pooling" => self.kernel.pooling = parse_bool(key, value)?,
            "kernel.audit_sample" => self.kernel.audit_sample = parse_positive(key, value, 1_000_000)?,
            "kernel.epoch_tick_ms" => self.kernel.epoch_tick_ms = parse_positive(key, value, 1000)?,
            "kernel.compiled_cache" => self.kernel.compiled_cache = parse_bool(key, value)?,
            _ => {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(config_error(key, format!("unknown key (known: {})", known.join(", "))));
            }
        }
        self.validate()
    }

    fn validate(&self) -> Result<(), KernelError> {
        if self.log.level.trim().is_empty() {
            return Err(config_error("log.level", "must not be empty"));
        }
        if !(1..=1_000_000).contains(&self.kernel.audit_sample) {
            return Err(config_error("kernel.audit_sample", "must be from 1 to 1000000"));
        }
        if !(1..=1000).contains(&self.kernel.epoch_tick_ms) {
            return Err(config_error("kernel.epoch_tick_ms", "must be from 1 to 1000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_name_file_and_line() {
        let err = Config::parse("[kernel]\npooling = true\naudit_sample = 0\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("kernel.audit_sample") && err.contains("c.toml"), "{err}");

        let err = Config::parse("[kernel]\npoolin = true\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line 2") && err.contains("poolin"), "{err}");
    }

    #[test]
    fn set_validates_and_names_key() {
        let mut c = Config::default();
        assert!(c.set("kernel.pooling", "off").is_ok());
        assert!(!c.kernel.pooling);
        let err = c.set("log.format", "xml").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("log.format") && err.contains("xml"), "{err}");
        let err = c.set("kernel.nope", "1").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("unknown key"), "{err}");
    }
}
