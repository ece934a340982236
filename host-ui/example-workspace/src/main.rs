//! A tiny inventory program for trying Symphony's carets on.

use std::collections::BTreeMap;

/// An item on a shelf.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub quantity: u32,
    pub price_cents: u64,
}

/// Items by name.
#[derive(Debug, Default)]
pub struct Inventory {
    items: BTreeMap<String, Item>,
}

impl Inventory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: &str, quantity: u32, price_cents: u64) {
        let item = self.items.entry(name.to_owned()).or_insert(Item {
            name: name.to_owned(),
            quantity: 0,
            price_cents,
        });
        item.quantity += quantity;
        item.price_cents = price_cents;
    }

    pub fn remove(&mut self, name: &str, quantity: u32) -> Result<(), String> {
        // TODO: keep a log of removals so stock can be audited
        let item = self.items.get_mut(name).ok_or_else(|| format!("no item {name}"))?;
        if item.quantity < quantity {
            return Err(format!("only {} of {name} left", item.quantity));
        }
        item.quantity -= quantity;
        Ok(())
    }

    pub fn total_value(&self) -> u64 {
        self.items.values().map(|item| u64::from(item.quantity) * item.price_cents).sum()
    }
}

fn main() {
    let mut inventory = Inventory::new();
    inventory.add("apple", 10, 50);
    inventory.add("pear", 4, 75);
    // FIXME: prices should come from a file, not from code
    if let Err(e) = inventory.remove("apple", 3) {
        eprintln!("{e}");
    }
    println!("total value: {} cents", inventory.total_value());
}
