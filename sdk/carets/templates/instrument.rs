//! {{name}}: a Symphony instrument. This one is a toy model that echoes its prompt backwards,
//! word by word, streaming each word as it is produced; replace it with a real model.

use symphony_caret::{host, Caret, Error, Instrument, ModelCard, OpInfo};

#[derive(Default)]
pub struct {{Type}};

impl Caret for {{Type}} {}

impl Instrument for {{Type}} {
    fn describe(&self) -> Vec<OpInfo> {
        vec![OpInfo::new("generate", "answers a prompt, streaming words")]
    }

    fn model_info(&self) -> ModelCard {
        ModelCard { name: "{{name}}".to_owned(), task: "completion".to_owned(), context_window: 512 }
    }

    fn call(&mut self, op: &str, input: &str) -> Result<String, Error> {
        match op {
            "generate" => {
                let mut answer = String::new();
                for word in input.split_whitespace().rev() {
                    let piece = if answer.is_empty() { word.to_owned() } else { format!(" {word}") };
                    host::emit(&piece);
                    answer.push_str(&piece);
                }
                Ok(answer)
            }
            other => Err(Error::not_found(format!("{{name}} has no op `{other}`"))),
        }
    }
}

symphony_caret::export!({{Type}});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ops_are_refused() {
        assert!({{Type}}::default().call("nope", "").is_err());
        assert_eq!({{Type}}.model_info().task, "completion");
    }
}
