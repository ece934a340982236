//! Builds the flat virtual-DOM node list a motif panel returns (WIT has no recursive types).
#![cfg_attr(not(feature = "motif"), allow(dead_code))]

#[cfg(feature = "motif")]
pub use builder::Builder;

#[cfg(feature = "motif")]
mod builder {
    use crate::{Attr, VNode};

    /// Appends nodes to a flat list; node 0 is the root and children are indices.
    ///
    /// ```ignore
    /// let mut b = Builder::new("div");
    /// let list = b.child(0, "ul");
    /// b.text(list, "hello");
    /// let nodes = b.finish();
    /// ```
    #[derive(Debug, Default)]
    pub struct Builder {
        nodes: Vec<VNode>,
    }

    impl Builder {
        /// Starts a tree with a root element `tag` (index 0).
        pub fn new(tag: &str) -> Self {
            let mut b = Self { nodes: Vec::new() };
            b.push(tag, None);
            b
        }

        fn push(&mut self, tag: &str, text: Option<String>) -> u32 {
            let index = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
            self.nodes.push(VNode {
                tag: tag.to_owned(),
                key: None,
                attrs: Vec::new(),
                text,
                children: Vec::new(),
            });
            index
        }

        fn attach(&mut self, parent: u32, child: u32) {
            if let Some(p) = self.nodes.get_mut(parent as usize) {
                p.children.push(child);
            }
        }

        /// Appends an element `tag` under `parent`; returns its index.
        pub fn child(&mut self, parent: u32, tag: &str) -> u32 {
            let index = self.push(tag, None);
            self.attach(parent, index);
            index
        }

        /// Appends a text node under `parent`; returns its index.
        pub fn text(&mut self, parent: u32, text: &str) -> u32 {
            let index = self.push("#text", Some(text.to_owned()));
            self.attach(parent, index);
            index
        }

        /// Sets an attribute on `node` (`class`, `style`, `data-*`, `on:click` …).
        pub fn attr(&mut self, node: u32, name: &str, value: &str) -> &mut Self {
            if let Some(n) = self.nodes.get_mut(node as usize) {
                n.attrs.push(Attr { name: name.to_owned(), value: value.to_owned() });
            }
            self
        }

        /// Sets the diff key of `node`.
        pub fn key(&mut self, node: u32, key: &str) -> &mut Self {
            if let Some(n) = self.nodes.get_mut(node as usize) {
                n.key = Some(key.to_owned());
            }
            self
        }

        /// The finished node list.
        pub fn finish(self) -> Vec<VNode> {
            self.nodes
        }
    }
}
