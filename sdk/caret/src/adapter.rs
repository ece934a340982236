//! Bridges the plain caret traits onto the generated `Guest` traits of the selected world.

use crate::bindings::exports::symphony::caret::lifecycle;
use crate::{Caret, Error, Health};
use core::any::Any;
use core::cell::RefCell;
use core::marker::PhantomData;

/// The generated exports are implemented for `Adapter<T>`; `T` is the author's caret type.
pub struct Adapter<T>(PhantomData<T>);

thread_local! {
    /// The one live caret value of this component instance.
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `f` on the caret value, creating it with `Default` on first use.
pub(crate) fn with_caret<T: Caret, R>(f: impl FnOnce(&mut T) -> R) -> R {
    INSTANCE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let value = slot.get_or_insert_with(|| Box::new(T::default()));
        match value.downcast_mut::<T>() {
            Some(caret) => f(caret),
            // Only one caret type is exported per component, so this cannot happen;
            // replacing keeps the instance usable rather than trapping.
            None => {
                *value = Box::new(T::default());
                #[allow(clippy::unwrap_used)]
                f(value.downcast_mut::<T>().unwrap())
            }
        }
    })
}

impl<T: Caret> lifecycle::Guest for Adapter<T> {
    fn save_state() -> Vec<u8> {
        with_caret(|c: &mut T| c.save_state())
    }
    fn restore_state(state: Vec<u8>) -> Result<(), Error> {
        with_caret(|c: &mut T| c.restore_state(state))
    }
    fn health() -> Health {
        with_caret(|c: &mut T| c.health())
    }
}

#[cfg(feature = "operator")]
impl<T: crate::Operator> crate::bindings::exports::symphony::caret::operator_api::Guest for Adapter<T> {
    fn describe() -> Vec<crate::OpInfo> {
        with_caret(|c: &mut T| c.describe())
    }
    fn call(op: String, input: String) -> Result<String, Error> {
        with_caret(|c: &mut T| c.call(&op, &input))
    }
}

#[cfg(feature = "instrument")]
impl<T: crate::Instrument> crate::bindings::exports::symphony::caret::instrument_api::Guest
    for Adapter<T>
{
    fn describe() -> Vec<crate::OpInfo> {
        with_caret(|c: &mut T| c.describe())
    }
    fn model_info() -> crate::ModelCard {
        with_caret(|c: &mut T| c.model_info())
    }
    fn call(op: String, input: String) -> Result<String, Error> {
        with_caret(|c: &mut T| c.call(&op, &input))
    }
}

#[cfg(feature = "motif")]
impl<T: crate::Motif> crate::bindings::exports::symphony::caret::motif_api::Guest for Adapter<T> {
    fn describe() -> Vec<crate::OpInfo> {
        with_caret(|c: &mut T| c.describe())
    }
    fn call(op: String, input: String) -> Result<String, Error> {
        with_caret(|c: &mut T| c.call(&op, &input))
    }
    fn theme() -> Vec<crate::ThemeToken> {
        with_caret(|c: &mut T| c.theme())
    }
    fn panels() -> Vec<String> {
        with_caret(|c: &mut T| c.panels())
    }
    fn render(panel: String, state: String) -> Result<Vec<crate::VNode>, Error> {
        with_caret(|c: &mut T| c.render(&panel, &state))
    }
    fn handle_event(panel: String, state: String, event: crate::UiEvent) -> Result<String, Error> {
        with_caret(|c: &mut T| c.handle_event(&panel, &state, event))
    }
}
