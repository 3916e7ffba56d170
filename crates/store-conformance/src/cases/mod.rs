//! The cases, one public async function each, named as they are wired.

mod access;
mod attachments;
mod chain;
mod contacts;
mod escalation;
mod privacy;
mod safety;
mod tenancy;
mod tickets;
mod webhooks;

pub use access::*;
pub use attachments::*;
pub use chain::*;
pub use contacts::*;
pub use escalation::*;
pub use privacy::*;
pub use safety::*;
pub use tenancy::*;
pub use tickets::*;
pub use webhooks::*;
