//! Ephemeral key agreements with this mount's own identity, made ahead of
//! time on a helper thread.
//!
//! Every file this mount creates has a stanza for its creator, and making
//! one costs an X25519 base-point multiplication and a Diffie-Hellman,
//! spent while the creating process waits (perf: curve25519 was ~40% of the
//! daemon's user time during creates, this and the header's Ed25519
//! signature). Neither depends on the file, so a helper thread keeps a few
//! [`Agreement`]s ready (on another core when there is one) and a create
//! takes one, leaving it only the key derivation and one AEAD call. When
//! none is ready (a burst of creates), the create makes its own as before.
//! The helper uses [`Agreement::with_own`], two fixed-base multiplications
//! instead of one and a ladder: on a two-core node it shares the cores with
//! the creating processes, so its cost still counts (perf, 8,000 creates:
//! the helper used 0.95 s of CPU, 40% of the daemon's, before that change).
//!
//! Each agreement is used once and zeroizes its shared secret on drop; the
//! ephemeral secrets are gone as soon as the agreements exist. The thread
//! starts on the first create (not when the mount is prepared) and ends
//! when the file system is dropped.

use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Duration;

use rand_core::OsRng;
use tresor_format::{Agreement, Identity, PublicIdentity};

/// How many agreements are kept ready: enough for a burst of creates
/// while the helper catches up, few enough to hold almost no memory.
const READY: usize = 32;

pub struct Agreements {
    shared: Arc<Shared>,
    started: OnceLock<()>,
}

struct Shared {
    own: Arc<Identity>,
    ready: Mutex<Vec<Agreement>>,
    /// Signalled when an agreement is taken (the helper makes another).
    taken: Condvar,
}

impl Agreements {
    pub fn new(own: Arc<Identity>) -> Agreements {
        Agreements {
            shared: Arc::new(Shared { own, ready: Mutex::new(Vec::new()), taken: Condvar::new() }),
            started: OnceLock::new(),
        }
    }

    /// A ready agreement with `recipient`, if it is this mount's own
    /// identity and one is ready.
    pub fn take(&self, recipient: &PublicIdentity) -> Option<Agreement> {
        if recipient.id() != self.shared.own.id() {
            return None;
        }
        self.started.get_or_init(|| self.start());
        let taken = self.shared.ready.lock().unwrap_or_else(|e| e.into_inner()).pop();
        self.shared.taken.notify_one();
        taken
    }

    fn start(&self) {
        let weak = Arc::downgrade(&self.shared);
        let spawned = std::thread::Builder::new().name("tresor-agree".into()).spawn(move || refill(weak));
        if let Err(e) = spawned {
            // Creates still work, each making its own agreement.
            tracing::warn!("cannot start the key agreement helper thread: {e}");
        }
    }
}

impl Drop for Agreements {
    fn drop(&mut self) {
        self.shared.taken.notify_all();
    }
}

/// Keeps `READY` agreements ready until the file system is dropped.
fn refill(weak: Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        {
            let ready = shared.ready.lock().unwrap_or_else(|e| e.into_inner());
            if ready.len() >= READY {
                // Wake up now and then to notice the file system is gone.
                let _ = shared.taken.wait_timeout(ready, Duration::from_secs(1));
                continue;
            }
        }
        match Agreement::with_own(&shared.own, &mut OsRng) {
            Ok(a) => shared.ready.lock().unwrap_or_else(|e| e.into_inner()).push(a),
            Err(e) => {
                tracing::warn!("key agreement helper: {e}; creates make their own");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_format::Identity;

    #[test]
    fn agreements_are_for_the_own_identity_only_and_each_is_handed_out_once() {
        let own = Identity::generate("own", &mut OsRng).unwrap();
        let other = Identity::generate("other", &mut OsRng).unwrap();
        let own = Arc::new(own);
        let pool = Agreements::new(own.clone());
        assert!(pool.take(other.public()).is_none());
        // The helper fills the pool in the background.
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while got.len() < 3 && std::time::Instant::now() < deadline {
            match pool.take(own.public()) {
                Some(a) => got.push(a),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        assert_eq!(got.len(), 3, "the helper thread makes agreements");
        assert!(got.iter().all(|a| a.is_for(own.public()) && !a.is_for(other.public())));
        let key = [7u8; 32];
        let stanzas: Vec<_> = got
            .into_iter()
            .map(|a| tresor_format::Stanza::wrap_agreed(&key, own.public(), b"aad", a).unwrap())
            .collect();
        assert!(stanzas[0].ephemeral != stanzas[1].ephemeral && stanzas[1].ephemeral != stanzas[2].ephemeral);
        for s in &stanzas {
            assert_eq!(*s.unwrap(&own, b"aad").unwrap(), key);
        }
    }
}
