//! Instrument: a back-off trigram model over code tokens, trained on the workspace,
//! that completes a prefix and streams each token as it is chosen.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use symphony_caret::{host, Caret, Error, Instrument, ModelCard, OpInfo};

const WORKSPACE: &str = "/workspace";
const SOURCE_EXTENSIONS: &[&str] =
    &["rs", "py", "ts", "tsx", "js", "jsx", "toml", "md", "txt", "json", "html", "css", "go", "c", "h"];
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Counts of what followed each context; contexts are joined with U+0001, which no token holds.
#[derive(Default, Serialize, Deserialize)]
struct Model {
    unigrams: HashMap<String, u32>,
    bigrams: HashMap<String, HashMap<String, u32>>,
    trigrams: HashMap<String, HashMap<String, u32>>,
    files: u32,
    tokens: u64,
}

#[derive(Default)]
struct NgramComplete {
    model: Option<Model>,
}

#[derive(Deserialize)]
struct CompleteInput {
    prefix: String,
    #[serde(default = "default_max_tokens")]
    max_tokens: usize,
}

fn default_max_tokens() -> usize {
    8
}

#[derive(Serialize)]
struct TrainReport {
    files: u32,
    tokens: u64,
    vocabulary: usize,
}

/// Splits code into identifiers/numbers, single punctuation characters and newlines.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for ch in text.chars() {
        if ch.is_alphanumeric() || ch == '_' {
            word.push(ch);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if ch == '\n' {
            tokens.push("\n".to_owned());
        } else if !ch.is_whitespace() {
            tokens.push(ch.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

fn key(a: &str, b: &str) -> String {
    format!("{a}\u{1}{b}")
}

impl Model {
    fn learn(&mut self, tokens: &[String]) {
        for (i, t) in tokens.iter().enumerate() {
            *self.unigrams.entry(t.clone()).or_default() += 1;
            if i >= 1 {
                *self.bigrams.entry(tokens[i - 1].clone()).or_default().entry(t.clone()).or_default() += 1;
            }
            if i >= 2 {
                *self
                    .trigrams
                    .entry(key(&tokens[i - 2], &tokens[i - 1]))
                    .or_default()
                    .entry(t.clone())
                    .or_default() += 1;
            }
        }
        self.tokens += tokens.len() as u64;
    }

    /// The most frequent follower, backing off from trigram to bigram to unigram;
    /// ties break by token text so results are deterministic.
    fn next(&self, context: &[String]) -> Option<&str> {
        fn best(map: &HashMap<String, u32>) -> Option<&str> {
            map.iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(t, _)| t.as_str())
        }
        let n = context.len();
        if n >= 2 {
            if let Some(m) = self.trigrams.get(&key(&context[n - 2], &context[n - 1])) {
                return best(m);
            }
        }
        if n >= 1 {
            if let Some(m) = self.bigrams.get(&context[n - 1]) {
                return best(m);
            }
        }
        best(&self.unigrams)
    }
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_files(&path, out),
            Ok(t) if t.is_file() => {
                let ext_ok = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| SOURCE_EXTENSIONS.contains(&e));
                let size_ok = entry.metadata().map(|m| m.len() <= MAX_FILE_BYTES).unwrap_or(false);
                if ext_ok && size_ok {
                    out.push(path);
                }
            }
            _ => {}
        }
    }
}

impl NgramComplete {
    fn train(&mut self) -> Result<TrainReport, Error> {
        let root = Path::new(WORKSPACE);
        if let Err(e) = std::fs::read_dir(root) {
            return Err(Error::failed(format!(
                "the workspace is not visible ({e}): grant `fs.read:workspace` to train on it"
            )));
        }
        let mut files = Vec::new();
        collect_files(root, &mut files);
        let mut model = Model::default();
        for (i, file) in files.iter().enumerate() {
            host::progress(i as u64, files.len() as u64, "learning");
            if let Ok(text) = std::fs::read_to_string(file) {
                model.learn(&tokenize(&text));
                model.files += 1;
            }
        }
        let report =
            TrainReport { files: model.files, tokens: model.tokens, vocabulary: model.unigrams.len() };
        self.model = Some(model);
        Ok(report)
    }

    fn complete(&mut self, input: CompleteInput) -> Result<String, Error> {
        if self.model.is_none() {
            self.train()?;
        }
        let Some(model) = self.model.as_ref() else {
            return Err(Error::failed("model is not trained"));
        };
        if model.tokens == 0 {
            return Err(Error::failed("the workspace holds no source text to learn from"));
        }
        let mut context = tokenize(&input.prefix);
        let mut out = String::new();
        for _ in 0..input.max_tokens.min(256) {
            let Some(token) = model.next(&context) else { break };
            let token = token.to_owned();
            let piece = if token == "\n" || out.is_empty() && input.prefix.ends_with(char::is_whitespace) {
                token.clone()
            } else if token.chars().all(|c| c.is_alphanumeric() || c == '_')
                && context.last().is_some_and(|p| p.chars().all(|c| c.is_alphanumeric() || c == '_'))
            {
                format!(" {token}")
            } else {
                token.clone()
            };
            host::emit(&piece);
            out.push_str(&piece);
            let stop = token == "\n";
            context.push(token);
            if stop {
                break;
            }
        }
        Ok(out)
    }
}

impl Caret for NgramComplete {
    fn save_state(&mut self) -> Vec<u8> {
        self.model.as_ref().and_then(|m| serde_json::to_vec(m).ok()).unwrap_or_default()
    }
    fn restore_state(&mut self, state: Vec<u8>) -> Result<(), Error> {
        if state.is_empty() {
            return Ok(());
        }
        let model: Model = serde_json::from_slice(&state)
            .map_err(|e| Error::invalid_input(format!("saved model: {e}")))?;
        self.model = Some(model);
        Ok(())
    }
}

impl Instrument for NgramComplete {
    fn describe(&self) -> Vec<OpInfo> {
        vec![
            OpInfo::new("train", "learns token statistics from the workspace's source files"),
            OpInfo::new("complete", r#"continues {"prefix", "max_tokens"?}, streaming tokens"#),
        ]
    }

    fn model_info(&self) -> ModelCard {
        ModelCard { name: "ngram-complete/trigram".to_owned(), task: "completion".to_owned(), context_window: 2 }
    }

    fn call(&mut self, op: &str, input: &str) -> Result<String, Error> {
        match op {
            "train" => serde_json::to_string(&self.train()?).map_err(|e| Error::failed(e.to_string())),
            "complete" => {
                let req: CompleteInput = serde_json::from_str(input)
                    .map_err(|e| Error::invalid_input(format!("input JSON: {e}")))?;
                self.complete(req)
            }
            other => Err(Error::not_found(format!("ngram-complete has no op `{other}`"))),
        }
    }
}

symphony_caret::export!(NgramComplete);
