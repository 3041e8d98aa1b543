//! Unlocking an identity: `Identity::unseal`, which is one Argon2id run plus
//! a ChaCha20-Poly1305 open and the X25519/Ed25519 key derivation. Measured
//! with the production parameters (`KdfParams::default()`) and, for
//! comparison, with OWASP's minimum. Ids: `unseal/argon2id-m65536-t3-p1/default`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use tresor_benches::{kdf_label, sealed_identity, KDF_OWASP_MINIMUM, PASSPHRASE};
use tresor_format::{Identity, KdfParams};

fn unseal(c: &mut Criterion) {
    let mut group = c.benchmark_group("unseal");
    // Each iteration takes tens to hundreds of milliseconds: flat sampling
    // (the same iteration count in every sample) keeps the run short.
    group.sampling_mode(SamplingMode::Flat);
    let cases = [("default", KdfParams::default()), ("owasp-min", KDF_OWASP_MINIMUM)];
    for (name, params) in cases {
        let file = sealed_identity(params);
        group.bench_function(BenchmarkId::new(kdf_label(&params), name), |b| {
            b.iter(|| Identity::unseal(black_box(&file), black_box(PASSPHRASE)).expect("unseals"))
        });
    }
    group.finish();
}

criterion_group! {
    name = identity;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    targets = unseal
}
criterion_main!(identity);
