//! Test inputs and oracles that do not depend on the code under test.

/// The answer the protocol defines for `input` (PROTOCOL.md §2), built from
/// the standard library alone: each well-formed run `str::to_uppercase`d,
/// each ill-formed run (a maximal subpart) kept byte for byte.
pub fn reference_uppercase(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for chunk in input.utf8_chunks() {
        out.extend_from_slice(chunk.valid().to_uppercase().as_bytes());
        out.extend_from_slice(chunk.invalid());
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift64): garbage that is the same
/// on every run, so a failure can be replayed.
pub fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 32) as u8
        })
        .collect()
}
