//! {{name}}: a Symphony motif — a theme and a panel rendered as virtual DOM.

use symphony_caret::vdom::Builder;
use symphony_caret::{Caret, Error, Motif, ThemeToken, VNode};

#[derive(Default)]
pub struct {{Type}};

impl Caret for {{Type}} {}

impl Motif for {{Type}} {
    fn theme(&self) -> Vec<ThemeToken> {
        [("background", "#fdf6e3"), ("foreground", "#3b3b3b"), ("accent", "#b58900")]
            .iter()
            .map(|(name, value)| ThemeToken { name: (*name).to_owned(), value: (*value).to_owned() })
            .collect()
    }

    fn panels(&self) -> Vec<String> {
        vec!["hello".to_owned()]
    }

    fn render(&mut self, panel: &str, state: &str) -> Result<Vec<VNode>, Error> {
        if panel != "hello" {
            return Err(Error::not_found(format!("{{name}} has no panel `{panel}`")));
        }
        let mut b = Builder::new("section");
        let h = b.child(0, "h2");
        b.text(h, "Hello from {{name}}");
        let p = b.child(0, "p");
        b.text(p, if state.trim().is_empty() { "No state yet." } else { state });
        Ok(b.finish())
    }
}

symphony_caret::export!({{Type}});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_its_panel() {
        let nodes = {{Type}}.render("hello", "").ok().unwrap_or_default();
        assert_eq!(nodes[0].tag, "section");
        assert!({{Type}}.render("other", "").is_err());
    }
}
