//! Content-block throughput: `ContentCipher::seal_block` (with `OsRng`, as
//! the write path does) and `open_block` (the read path), for every suite and
//! several block sizes. Ids: `seal+open/AES-256-GCM/64KiB`,
//! `seal/ChaCha20-Poly1305/4KiB`, `open/AES-256-GCM-SIV/128KiB`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand_core::OsRng;
use tresor_benches::{content_cipher, random_bytes, sealed_block, size_label, BLOCK_OVERHEAD, BLOCK_SIZES};
use tresor_format::Suite;

/// Block number used throughout; any value works, it only goes into the AAD.
const BLOCK_NO: u64 = 7;

fn seal_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal+open");
    for suite in Suite::ALL {
        for &size in &BLOCK_SIZES {
            let cipher = content_cipher(suite, size);
            let plaintext = random_bytes(size);
            let mut ct = vec![0u8; size + BLOCK_OVERHEAD];
            let mut pt = vec![0u8; size];
            cipher.seal_block(BLOCK_NO, &plaintext, &mut ct, &mut OsRng);
            cipher.open_block(BLOCK_NO, &ct, &mut pt).expect("opens");
            assert_eq!(pt, plaintext, "round trip");
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(suite.as_str(), size_label(size)), |b| {
                b.iter(|| {
                    cipher.seal_block(BLOCK_NO, black_box(&plaintext), &mut ct, &mut OsRng);
                    let n = cipher.open_block(BLOCK_NO, black_box(&ct), &mut pt).expect("opens");
                    black_box(&pt[..n]);
                })
            });
        }
    }
    group.finish();
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    for suite in Suite::ALL {
        for &size in &BLOCK_SIZES {
            let cipher = content_cipher(suite, size);
            let plaintext = random_bytes(size);
            let mut ct = vec![0u8; size + BLOCK_OVERHEAD];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(suite.as_str(), size_label(size)), |b| {
                b.iter(|| {
                    cipher.seal_block(BLOCK_NO, black_box(&plaintext), &mut ct, &mut OsRng);
                    black_box(&ct);
                })
            });
        }
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    for suite in Suite::ALL {
        for &size in &BLOCK_SIZES {
            let cipher = content_cipher(suite, size);
            let plaintext = random_bytes(size);
            let ct = sealed_block(&cipher, BLOCK_NO, &plaintext);
            let mut pt = vec![0u8; size];
            cipher.open_block(BLOCK_NO, &ct, &mut pt).expect("opens");
            assert_eq!(pt, plaintext, "round trip");
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(suite.as_str(), size_label(size)), |b| {
                b.iter(|| {
                    let n = cipher.open_block(BLOCK_NO, black_box(&ct), &mut pt).expect("opens");
                    black_box(&pt[..n]);
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = blocks;
    // Short runs: 36 benchmarks finish in about two minutes on 2 cores.
    // Command-line options (`-- --measurement-time 5`) override these.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = seal_open, seal, open
}
criterion_main!(blocks);
