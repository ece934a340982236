//! `pit/settings`: the IDE's settings — theme, font size, tab size, word wrap, keymap — kept in
//! `<home>/settings.json`, validated field by field (a bad value is refused naming the field and
//! what it accepts; nothing is written), persisted atomically, and pushed to `settings`
//! subscribers so every open window applies a change at once. Ops: `get`, `set {field: value…}`,
//! `schema` (a JSON Schema for the settings form).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::{mpsc, Mutex};
use symphony_kernel::{CallError, ErrorCode, Principal, Service};

/// The settings, with their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `light`, `dark`, or `motif:<caret id>` for a shipped motif's theme.
    pub theme: String,
    pub font_size: u8,
    pub tab_size: u8,
    pub word_wrap: bool,
    /// `default`, `vim` or `emacs`.
    pub keymap: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self { theme: "dark".to_owned(), font_size: 14, tab_size: 4, word_wrap: false, keymap: "default".to_owned() }
    }
}

fn bad(field: &str, wants: &str, got: &Value) -> CallError {
    CallError::new(ErrorCode::InvalidInput, format!("settings.{field}: expected {wants}, got {got}"))
}

impl Settings {
    /// Applies one field, checking it; the settings are unchanged on error.
    fn set(&mut self, field: &str, value: &Value) -> Result<(), CallError> {
        let int = |lo: u64, hi: u64| value.as_u64().filter(|n| (lo..=hi).contains(n)).and_then(|n| u8::try_from(n).ok());
        match field {
            "theme" => match value.as_str() {
                Some(t @ ("light" | "dark")) => self.theme = t.to_owned(),
                Some(t) if t.strip_prefix("motif:").is_some_and(symphony_kernel::manifest::is_valid_id) => self.theme = t.to_owned(),
                _ => return Err(bad(field, "\"light\", \"dark\" or \"motif:<caret id>\"", value)),
            },
            "font_size" => self.font_size = int(8, 48).ok_or_else(|| bad(field, "a whole number from 8 to 48", value))?,
            "tab_size" => self.tab_size = int(1, 16).ok_or_else(|| bad(field, "a whole number from 1 to 16", value))?,
            "word_wrap" => self.word_wrap = value.as_bool().ok_or_else(|| bad(field, "true or false", value))?,
            "keymap" => match value.as_str() {
                Some(k @ ("default" | "vim" | "emacs")) => self.keymap = k.to_owned(),
                _ => return Err(bad(field, "\"default\", \"vim\" or \"emacs\"", value)),
            },
            other => {
                return Err(CallError::new(
                    ErrorCode::InvalidInput,
                    format!("settings.{other}: no such setting; there are theme, font_size, tab_size, word_wrap, keymap"),
                ));
            }
        }
        Ok(())
    }
}

/// The JSON Schema of the settings, for the UI's form.
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "theme": { "type": "string", "pattern": "^(light|dark|motif:[a-z][a-z0-9-]{1,63})$", "default": "dark" },
            "font_size": { "type": "integer", "minimum": 8, "maximum": 48, "default": 14 },
            "tab_size": { "type": "integer", "minimum": 1, "maximum": 16, "default": 4 },
            "word_wrap": { "type": "boolean", "default": false },
            "keymap": { "enum": ["default", "vim", "emacs"], "default": "default" }
        }
    })
}

#[derive(Debug)]
pub struct SettingsService {
    file: PathBuf,
    current: Mutex<Settings>,
    listeners: Mutex<Vec<mpsc::Sender<Settings>>>,
}

impl SettingsService {
    /// Loads `<home>/settings.json`; a file that does not parse is reported, never overwritten
    /// until a valid `set` replaces it.
    pub fn open(home: &std::path::Path) -> Result<Self, String> {
        let file = home.join("settings.json");
        let current = match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        Ok(Self { file, current: Mutex::new(current), listeners: Mutex::new(Vec::new()) })
    }

    /// Changes from now on.
    pub fn listen(&self) -> mpsc::Receiver<Settings> {
        let (tx, rx) = mpsc::channel();
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    fn update(&self, changes: &Map<String, Value>) -> Result<Settings, CallError> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = current.clone();
        for (field, value) in changes {
            next.set(field, value)?;
        }
        let text = serde_json::to_vec_pretty(&next).map_err(|e| CallError::new(ErrorCode::Internal, e.to_string()))?;
        let tmp = self.file.with_extension("json.tmp");
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, &self.file))
            .map_err(|e| CallError::new(ErrorCode::Failed, format!("saving {}: {e}", self.file.display())))?;
        *current = next.clone();
        drop(current);
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).retain(|l| l.send(next.clone()).is_ok());
        Ok(next)
    }
}

impl Service for SettingsService {
    fn name(&self) -> &str {
        "settings"
    }

    fn call(&self, _principal: &Principal, op: &str, payload: &str) -> Result<String, CallError> {
        let answer = match op {
            "get" => serde_json::to_value(&*self.current.lock().unwrap_or_else(|p| p.into_inner())),
            "schema" => Ok(schema()),
            "set" => {
                let changes: Map<String, Value> = serde_json::from_str(if payload.trim().is_empty() { "{}" } else { payload })
                    .map_err(|e| CallError::new(ErrorCode::InvalidInput, format!("pit/settings set: an object of settings: {e}")))?;
                serde_json::to_value(self.update(&changes)?)
            }
            other => return Err(CallError::new(ErrorCode::NotFound, format!("pit/settings has no op `{other}`; it has get, set, schema"))),
        };
        answer.map(|v| v.to_string()).map_err(|e| CallError::new(ErrorCode::Internal, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;
    use serde_json::json;

    #[test]
    fn each_bad_value_names_its_field_and_what_it_accepts() {
        // (field, value, expected fragment of the error)
        for (field, value, says) in [
            ("font_size", json!(7), "settings.font_size: expected a whole number from 8 to 48, got 7"),
            ("font_size", json!("big"), "settings.font_size"),
            ("tab_size", json!(0), "settings.tab_size"),
            ("word_wrap", json!("yes"), "settings.word_wrap: expected true or false"),
            ("theme", json!("motif:Bad"), "settings.theme"),
            ("keymap", json!("nano"), "settings.keymap"),
            ("colour", json!(1), "settings.colour: no such setting"),
        ] {
            let mut s = Settings::default();
            let err = s.set(field, &value).err().map(|e| e.message).unwrap_or_default();
            assert!(err.contains(says), "{field}={value}: {err}");
            assert_eq!(s, Settings::default(), "a refused value changed the settings");
        }
        let mut s = Settings::default();
        assert!(s.set("theme", &json!("motif:aurora")).is_ok() && s.set("font_size", &json!(16)).is_ok());
        assert_eq!((s.theme.as_str(), s.font_size), ("motif:aurora", 16));
    }
}
