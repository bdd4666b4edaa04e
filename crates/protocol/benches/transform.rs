//! The transform against `str::to_uppercase`, on ASCII and on mixed text.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p shout-protocol`); the
//! figures and their ratios go to docs/BENCHMARKS.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shout_protocol::Uppercaser;
use std::hint::black_box;

const SIZE: usize = 64 * 1024;

fn corpus(unit: &str) -> String {
    unit.repeat(SIZE / unit.len() + 1)[..]
        .char_indices()
        .take_while(|(i, c)| i + c.len_utf8() <= SIZE)
        .map(|(_, c)| c)
        .collect()
}

fn bench(c: &mut Criterion) {
    let inputs = [
        (
            "ascii",
            corpus("The quick brown fox jumps over the lazy dog. "),
        ),
        (
            "mixed",
            corpus("Grüße aus Köln, ça va? Ελληνικά και 日本語 text. "),
        ),
    ];
    for (name, text) in &inputs {
        let mut group = c.benchmark_group(*name);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function("std_to_uppercase", |b| {
            b.iter(|| black_box(black_box(text.as_str()).to_uppercase()))
        });
        let mut out = Vec::with_capacity(text.len() * 3);
        group.bench_function("uppercaser", |b| {
            b.iter(|| {
                out.clear();
                let mut upper = Uppercaser::new();
                upper.feed(black_box(text.as_bytes()), &mut out);
                upper.finish(&mut out);
                black_box(&out);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
