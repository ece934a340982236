//! Motif: the Aurora theme's design tokens and a TODO panel built as virtual DOM.
//!
//! The panel asks `text-tools` for the workspace's TODOs through the proxy, so it shows a
//! cross-caret call that needs its own grant (`caret.call:text-tools/todos`).

use serde::{Deserialize, Serialize};
use symphony_caret::vdom::Builder;
use symphony_caret::{host, Caret, Error, Motif, ThemeToken, UiEvent, VNode};

const PANEL: &str = "todos";

#[derive(Default)]
struct Aurora;

#[derive(Deserialize, Serialize, Clone)]
struct Todo {
    path: String,
    line: usize,
    text: String,
}

/// The panel's state: the TODOs (fetched when absent) and which are ticked off.
#[derive(Deserialize, Serialize, Default)]
struct PanelState {
    #[serde(default)]
    items: Option<Vec<Todo>>,
    #[serde(default)]
    done: Vec<usize>,
}

const TOKENS: &[(&str, &str)] = &[
    ("background", "#0b1021"),
    ("foreground", "#d8e1f0"),
    ("accent", "#5eead4"),
    ("accent.secondary", "#a78bfa"),
    ("panel.background", "#111833"),
    ("panel.border", "#1f2a4d"),
    ("editor.background", "#0d1328"),
    ("editor.selection", "#27335c"),
    ("editor.cursor", "#5eead4"),
    ("syntax.keyword", "#a78bfa"),
    ("syntax.string", "#86efac"),
    ("syntax.comment", "#64748b"),
    ("syntax.number", "#fbbf24"),
    ("syntax.function", "#5eead4"),
    ("error", "#f87171"),
    ("warning", "#fbbf24"),
];

fn parse_state(state: &str) -> Result<PanelState, Error> {
    if state.trim().is_empty() {
        return Ok(PanelState::default());
    }
    serde_json::from_str(state).map_err(|e| Error::invalid_input(format!("panel state JSON: {e}")))
}

fn fetch_todos() -> Result<Vec<Todo>, Error> {
    let answer = host::invoke("caret/text-tools", "todos", "{}")?;
    serde_json::from_str(&answer).map_err(|e| Error::failed(format!("text-tools answered: {e}")))
}

impl Caret for Aurora {}

impl Motif for Aurora {
    fn theme(&self) -> Vec<ThemeToken> {
        TOKENS
            .iter()
            .map(|(name, value)| ThemeToken { name: (*name).to_owned(), value: (*value).to_owned() })
            .collect()
    }

    fn panels(&self) -> Vec<String> {
        vec![PANEL.to_owned()]
    }

    fn render(&mut self, panel: &str, state: &str) -> Result<Vec<VNode>, Error> {
        if panel != PANEL {
            return Err(Error::not_found(format!("aurora has no panel `{panel}`")));
        }
        let mut state = parse_state(state)?;
        let items = match state.items.take() {
            Some(items) => items,
            None => fetch_todos()?,
        };
        let mut b = Builder::new("section");
        b.attr(0, "class", "aurora-todos");
        let title = b.child(0, "h2");
        let open = items.len() - state.done.iter().filter(|i| **i < items.len()).count();
        b.text(title, &format!("TODO ({open} open)"));
        if items.is_empty() {
            let p = b.child(0, "p");
            b.text(p, "Nothing to do.");
            return Ok(b.finish());
        }
        let list = b.child(0, "ul");
        for (i, item) in items.iter().enumerate() {
            let li = b.child(list, "li");
            b.key(li, &format!("{}:{}", item.path, item.line));
            b.attr(li, "on:click", "toggle");
            if state.done.contains(&i) {
                b.attr(li, "class", "done");
            }
            let loc = b.child(li, "code");
            b.text(loc, &format!("{}:{}", item.path, item.line));
            b.text(li, &item.text);
        }
        Ok(b.finish())
    }

    fn handle_event(&mut self, panel: &str, state: &str, event: UiEvent) -> Result<String, Error> {
        if panel != PANEL {
            return Err(Error::not_found(format!("aurora has no panel `{panel}`")));
        }
        let mut state = parse_state(state)?;
        if event.kind == "click" {
            // Node indices: 0 section, 1 h2, 2 its text, 3 ul, then 4 nodes per item (li, code,
            // code text, item text); the item is recovered from the index of its <li>.
            let node = event.node as usize;
            if node >= 4 && (node - 4) % 4 == 0 {
                let item = (node - 4) / 4;
                if let Some(pos) = state.done.iter().position(|d| *d == item) {
                    state.done.remove(pos);
                } else {
                    state.done.push(item);
                }
            }
        }
        serde_json::to_string(&state).map_err(|e| Error::failed(e.to_string()))
    }
}

symphony_caret::export!(Aurora);
