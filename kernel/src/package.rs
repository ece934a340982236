//! `.caret` packages: a tar of `Symphony.toml`, `component.wasm` and `signature.json`. The
//! signature is ed25519 over a BLAKE3 content hash that binds the manifest and the component
//! together, so neither can be swapped or edited without the check failing.

use crate::error::KernelError;
use crate::manifest::{Manifest, MANIFEST_FILE};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

const COMPONENT_FILE: &str = "component.wasm";
const SIGNATURE_FILE: &str = "signature.json";
/// Most bytes read from one archive entry: carets are components, not data sets.
const MAX_ENTRY: u64 = 256 * 1024 * 1024;

/// What `signature.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureFile {
    /// BLAKE3 of the package contents (see `content_hash`), hex.
    pub content_hash: String,
    /// The signer's ed25519 public key, hex.
    pub key: String,
    /// ed25519 signature of the content hash bytes, hex.
    pub signature: String,
    /// Who signed, as the signer named themselves (informational; trust is by key).
    pub signer: String,
}

/// A package's parts.
#[derive(Clone, Debug)]
pub struct Package {
    pub manifest_text: String,
    pub component: Vec<u8>,
    pub signature: Option<SignatureFile>,
}

/// A package whose contents match its hash, and whose signature (if any) checks out.
#[derive(Clone, Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub component: Vec<u8>,
    pub content_hash: String,
    /// `(key hex, signer)` when signed.
    pub signed_by: Option<(String, String)>,
}

/// Why a package was refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{}: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("{}: the contents do not match the signed hash (expected {expected}, found {found}): the package was altered after signing", path.display())]
    Tampered { path: PathBuf, expected: String, found: String },
    #[error("{}: the signature does not verify with key {key}", path.display())]
    BadSignature { path: PathBuf, key: String },
    #[error("{}: the package is not signed (sign it with `carets sign`, or install with --allow-unsigned)", path.display())]
    Unsigned { path: PathBuf },
    #[error("{}: signed by {signer} with key {key}, which you do not trust; if you do, run `symphony trust add {key}`", path.display())]
    Untrusted { path: PathBuf, key: String, signer: String },
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The hash a signature covers: both files, length-prefixed, under a domain tag.
pub fn content_hash(manifest_text: &str, component: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"symphony-caret-package-v1\0");
    h.update(&(manifest_text.len() as u64).to_le_bytes());
    h.update(manifest_text.as_bytes());
    h.update(&(component.len() as u64).to_le_bytes());
    h.update(component);
    h.finalize()
}

/// A fresh signing key from the OS's randomness.
pub fn generate_key() -> Result<SigningKey, KernelError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| KernelError::Engine(format!("no randomness for a key: {e}")))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// Parses a public key given as hex.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = unhex(text)?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

impl Package {
    /// Signs the contents with `key`, replacing any signature.
    pub fn sign(&mut self, key: &SigningKey, signer: &str) {
        let hash = content_hash(&self.manifest_text, &self.component);
        let signature = key.sign(hash.as_bytes());
        self.signature = Some(SignatureFile {
            content_hash: hash.to_hex().to_string(),
            key: hex(key.verifying_key().as_bytes()),
            signature: hex(&signature.to_bytes()),
            signer: signer.to_owned(),
        });
    }

    /// The archive bytes.
    pub fn to_tar(&self) -> Result<Vec<u8>, KernelError> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, name, bytes)
        };
        let io = |e| KernelError::io("<package>", e);
        add(MANIFEST_FILE, self.manifest_text.as_bytes()).map_err(io)?;
        add(COMPONENT_FILE, &self.component).map_err(io)?;
        if let Some(sig) = &self.signature {
            let json = serde_json::to_vec_pretty(sig).map_err(|e| KernelError::io("<package>", std::io::Error::other(e)))?;
            add(SIGNATURE_FILE, &json).map_err(io)?;
        }
        builder.into_inner().map_err(io)
    }

    /// Reads an archive; `path` names it in errors.
    pub fn from_tar(bytes: &[u8], path: &Path) -> Result<Self, PackageError> {
        let bad = |reason: String| PackageError::Malformed { path: path.to_path_buf(), reason };
        let mut manifest = None;
        let mut component = None;
        let mut signature = None;
        let mut archive = tar::Archive::new(bytes);
        for entry in archive.entries().map_err(|e| bad(format!("not a .caret archive: {e}")))? {
            let entry = entry.map_err(|e| bad(format!("corrupt archive: {e}")))?;
            let name = entry.path().map_err(|e| bad(format!("bad entry name: {e}")))?.to_string_lossy().into_owned();
            if entry.size() > MAX_ENTRY {
                return Err(bad(format!("`{name}` is larger than {MAX_ENTRY} bytes")));
            }
            let mut data = Vec::new();
            entry.take(MAX_ENTRY).read_to_end(&mut data).map_err(|e| bad(format!("reading `{name}`: {e}")))?;
            match name.as_str() {
                MANIFEST_FILE => {
                    manifest = Some(String::from_utf8(data).map_err(|_| bad(format!("`{MANIFEST_FILE}` is not UTF-8")))?);
                }
                COMPONENT_FILE => component = Some(data),
                SIGNATURE_FILE => {
                    signature = Some(
                        serde_json::from_slice(&data).map_err(|e| bad(format!("`{SIGNATURE_FILE}`: {e}")))?,
                    );
                }
                other => return Err(bad(format!("unexpected entry `{other}`"))),
            }
        }
        Ok(Package {
            manifest_text: manifest.ok_or_else(|| bad(format!("no `{MANIFEST_FILE}` inside")))?,
            component: component.ok_or_else(|| bad(format!("no `{COMPONENT_FILE}` inside")))?,
            signature,
        })
    }

    /// Checks the contents against the signed hash and the signature against its key.
    /// Whether that key is trusted is the caller's question.
    pub fn verify(self, path: &Path) -> Result<Verified, PackageError> {
        let found = content_hash(&self.manifest_text, &self.component).to_hex().to_string();
        let manifest = Manifest::parse(&self.manifest_text, &path.join(MANIFEST_FILE)).map_err(KernelError::from)?;
        let signed_by = match &self.signature {
            None => None,
            Some(sig) => {
                if sig.content_hash != found {
                    return Err(PackageError::Tampered { path: path.to_path_buf(), expected: sig.content_hash.clone(), found });
                }
                let bad_sig = || PackageError::BadSignature { path: path.to_path_buf(), key: sig.key.clone() };
                let key = parse_public_key(&sig.key).ok_or_else(bad_sig)?;
                let raw: [u8; 64] = unhex(&sig.signature).and_then(|b| b.try_into().ok()).ok_or_else(bad_sig)?;
                let signature = ed25519_dalek::Signature::from_bytes(&raw);
                let digest = unhex(&found).ok_or_else(bad_sig)?;
                key.verify_strict(&digest, &signature).map_err(|_| bad_sig())?;
                Some((sig.key.clone(), sig.signer.clone()))
            }
        };
        Ok(Verified { manifest, component: self.component, content_hash: found, signed_by })
    }
}

/// Reads and verifies the package at `path`.
pub fn open(path: &Path) -> Result<Verified, PackageError> {
    let bytes = std::fs::read(path).map_err(|e| KernelError::io(path, e))?;
    Package::from_tar(&bytes, path)?.verify(path)
}
