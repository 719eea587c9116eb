//! Dev-only helpers for imgclass tests: seeded generators, naive reference implementations, fixture writers
