//! Seeded generators of random and adversarial u8/f32 data (owned by the k-NN work).
