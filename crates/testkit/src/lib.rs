//! Dev-only helpers for imgclass tests: seeded generators, naive reference implementations,
//! fixture writers. Never a dependency of a library crate's non-dev code.

pub mod archives;
pub mod fixtures;
pub mod http;
pub mod random;

/// The README's Rust blocks, compiled by `cargo test --doc -p imgclass-testkit` (so CI
/// compiles the "Use one crate" program; this crate dev-depends on every crate it uses).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
