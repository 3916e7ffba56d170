//! careline's domain. Everything a contact goes through — validation, routing,
//! the ticket state machine, service-level clocks, who may do what, and the
//! hash-chained event record — lives here as plain Rust over plain data.
//! Storage and HTTP sit outside and call in; nothing here does I/O.

pub mod admin;
pub mod attachment;
pub mod authz;
pub mod clock;
pub mod error;
pub mod escalation;
pub mod event;
pub mod feedback;
pub mod ids;
pub mod ingest;
pub mod login;
pub mod model;
pub mod outbound;
pub mod privacy;
pub mod proxies;
pub mod reads;
pub mod safety;
pub mod search;
pub mod session;
pub mod settings;
pub mod sla;
pub mod stream;
pub mod ticket;
pub mod validate;

pub use careline_triage::{Disposition, Judgement};
pub use error::{Error, Result};
