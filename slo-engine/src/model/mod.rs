//! The pure model at the bottom of the engine: labels and their fingerprints, matchers,
//! silences, the Workbook windows and the slice every source fills. No IO, no clock.

mod labels;
mod matcher;
mod silence;
mod slice;
mod windows;

pub use labels::*;
pub use matcher::*;
pub use silence::*;
pub use slice::*;
pub use windows::*;
