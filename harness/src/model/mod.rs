//! The vocabulary: operations' impact, samples, verdicts and tables.

mod duration;
pub mod impact;
pub mod table;

pub use duration::Dur;
pub use impact::{Classification, Impact, Outcome, Sample};
pub use table::{ImpactTable, Row};
