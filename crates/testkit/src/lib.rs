//! Dev-only helpers for imgclass tests: seeded generators, naive reference implementations,
//! fixture writers. Never a dependency of a library crate's non-dev code.

pub mod archives;
pub mod fixtures;
pub mod http;
pub mod random;
