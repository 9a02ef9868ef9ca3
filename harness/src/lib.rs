//! firedrill: bring up clusters, deploy the systems a failure-domain document describes,
//! inject the document's faults, observe what still works, and check the observed
//! impact table against the documented one.
//!
//! The data flow is `suite` → `runner` → `backend` (provision) → `deploy` → per
//! scenario: `journal` + `fault` inject, `probe` sampling, revert, recovery → `model`
//! tables → `snapshot` comparison → `report`.

pub mod apply;
pub mod backend;
pub mod cli;
pub mod component;
pub mod deploy;
pub mod env;
pub mod error;
pub mod fault;
pub mod files;
pub mod fixtures;
pub mod journal;
pub mod model;
pub mod names;
pub mod objects;
pub mod probe;
pub mod recording;
pub mod report;
pub mod runner;
pub mod snapshot;
pub mod suite;
pub mod template;
pub mod topology;
pub mod wait;
