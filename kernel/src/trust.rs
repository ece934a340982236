//! The keys a person trusts to sign carets, kept in `<home>/trusted-keys.json`.

use crate::audit::now_rfc3339;
use crate::error::KernelError;
use crate::fsutil::write_atomic;
use crate::package::parse_public_key;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One trusted key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    /// ed25519 public key, hex.
    pub key: String,
    pub name: String,
    pub added_at: String,
}

/// The trust store of one home.
#[derive(Clone, Debug)]
pub struct TrustStore {
    path: PathBuf,
}

impl TrustStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn list(&self) -> Result<Vec<TrustedKey>, KernelError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KernelError::Corrupt {
                path: self.path.clone(),
                what: "trusted keys file",
                line: e.line(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(KernelError::io(&self.path, e)),
        }
    }

    fn save(&self, keys: &[TrustedKey]) -> Result<(), KernelError> {
        let json = serde_json::to_vec_pretty(keys).map_err(|e| KernelError::io(&self.path, std::io::Error::other(e)))?;
        write_atomic(&self.path, &json).map_err(|e| KernelError::io(&self.path, e))
    }

    /// Trusts `key` (hex); adding a key twice keeps the first entry.
    pub fn add(&self, key: &str, name: &str) -> Result<TrustedKey, KernelError> {
        let key = key.trim().to_ascii_lowercase();
        if parse_public_key(&key).is_none() {
            return Err(KernelError::Config {
                key: "trust".to_owned(),
                message: format!("`{key}` is not an ed25519 public key (64 hex digits, as `carets keygen` prints)"),
                source_file: None,
            });
        }
        let mut keys = self.list()?;
        if let Some(existing) = keys.iter().find(|k| k.key == key) {
            return Ok(existing.clone());
        }
        let entry = TrustedKey { key, name: name.to_owned(), added_at: now_rfc3339() };
        keys.push(entry.clone());
        self.save(&keys)?;
        Ok(entry)
    }

    /// Stops trusting `key`; returns whether it was trusted.
    pub fn remove(&self, key: &str) -> Result<bool, KernelError> {
        let key = key.trim().to_ascii_lowercase();
        let mut keys = self.list()?;
        let before = keys.len();
        keys.retain(|k| k.key != key);
        if keys.len() == before {
            return Ok(false);
        }
        self.save(&keys)?;
        Ok(true)
    }

    pub fn is_trusted(&self, key: &str) -> Result<bool, KernelError> {
        Ok(self.list()?.iter().any(|k| k.key == key))
    }
}
