//! New file headers made ahead of time on a helper thread.
//!
//! Creating a file costs public-key cryptography while the creating process
//! waits: an X25519 agreement for every recipient's stanza and the header's
//! Ed25519 signature (perf: with the creator's agreement already made
//! ahead, the signature alone was about a fifth of the daemon's time per
//! create). None of it depends on the file's name or content, only on who
//! its recipients are. So a helper thread keeps a few complete new files
//! ready (file id, content key, stanzas, signature, and the sealed trailer
//! of an empty file) for the recipient set of the latest create, and a
//! create that wants that set takes one: no public-key work is left in its
//! request. A miss (the first create, a directory with another policy, a
//! burst faster than the helper) makes its own, as before.
//!
//! A ready header is handed out once, only for exactly the recipients the
//! create computed from the registry in force, and at most [`MAX_AGE`]
//! after it was signed: its signing time is when it was made, not when its
//! file appeared. Content keys live only inside the ciphers (as for every
//! open file) and the helper's agreements with the own key use
//! [`Agreement::with_own`], two fixed-base multiplications instead of a
//! base-point multiplication and a ladder. The thread starts on the first
//! create and ends when the file system is dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use rand_core::OsRng;
use tresor_format::{Agreement, ContentCipher, Header, Identity, PublicIdentity, Volume};

/// How many new files are kept ready: enough for a burst of creates while
/// the helper catches up; a few KiB each.
const READY: usize = 16;

/// A ready header older than this is dropped unused.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// A new file's first bytes and its cipher.
pub struct NewFile {
    /// Header region and the trailer of an empty file, to be written at 0.
    pub bytes: Vec<u8>,
    pub cipher: ContentCipher,
    recipients: Vec<PublicIdentity>,
    made: Instant,
}

/// Makes a new file for `recipients`, signed by `identity` now.
pub fn make(volume: &Volume, identity: &Identity, recipients: &[PublicIdentity]) -> tresor_format::Result<NewFile> {
    let own = identity.public().id();
    let agreed =
        &mut |r: &PublicIdentity| if r.id() == own { Agreement::with_own(identity, &mut OsRng).ok() } else { None };
    let (header, key) =
        Header::create_agreed(volume, identity, recipients, crate::sys::now_secs(), &mut OsRng, agreed)?;
    let p = volume.params;
    let cipher = ContentCipher::new(p.suite, &key, &header.file_id, p.block_size);
    drop(key);
    let mut bytes = header.to_bytes()?;
    bytes.extend_from_slice(&cipher.seal_trailer(0, &mut OsRng));
    Ok(NewFile { bytes, cipher, recipients: recipients.to_vec(), made: Instant::now() })
}

pub struct ReadyFiles {
    shared: Arc<Shared>,
    started: OnceLock<()>,
}

struct Shared {
    identity: Arc<Identity>,
    state: Mutex<State>,
    /// Signalled when a file is taken or the wanted recipients change.
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// The registry and recipients of the latest create.
    want: Option<(Arc<Volume>, Vec<PublicIdentity>)>,
    ready: VecDeque<NewFile>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ReadyFiles {
    pub fn new(identity: Arc<Identity>) -> ReadyFiles {
        ReadyFiles {
            shared: Arc::new(Shared { identity, state: Mutex::default(), wake: Condvar::new() }),
            started: OnceLock::new(),
        }
    }

    /// A ready new file for exactly `recipients`, if there is one; either
    /// way the helper goes on making files for them.
    pub fn take(&self, volume: &Arc<Volume>, recipients: &[PublicIdentity]) -> Option<NewFile> {
        self.started.get_or_init(|| self.start());
        let mut state = self.shared.state();
        let taken = if state.want.as_ref().is_some_and(|(_, r)| r == recipients) {
            let now = Instant::now();
            state.ready.retain(|f| now.duration_since(f.made) < MAX_AGE);
            state.ready.pop_front()
        } else {
            state.ready.clear();
            None
        };
        state.want = Some((volume.clone(), recipients.to_vec()));
        drop(state);
        self.shared.wake.notify_one();
        // The pool only ever holds files for `want`; checked again because a
        // header for other recipients would give the wrong people access.
        taken.filter(|f| f.recipients == recipients)
    }

    fn start(&self) {
        let weak = Arc::downgrade(&self.shared);
        let spawned = std::thread::Builder::new().name("tresor-ready".into()).spawn(move || refill(weak));
        if let Err(e) = spawned {
            // Creates still work, each making its own header.
            tracing::warn!("cannot start the helper thread that makes headers ahead: {e}");
        }
    }
}

impl Drop for ReadyFiles {
    fn drop(&mut self) {
        self.shared.wake.notify_all();
    }
}

/// Keeps `READY` new files ready for the wanted recipients until the file
/// system is dropped.
fn refill(weak: Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let want = {
            let state = shared.state();
            match &state.want {
                Some((volume, recipients)) if state.ready.len() < READY => (volume.clone(), recipients.clone()),
                _ => {
                    // Wake up now and then to notice the file system is gone.
                    let _ = shared.wake.wait_timeout(state, Duration::from_secs(1));
                    continue;
                }
            }
        };
        match make(&want.0, &shared.identity, &want.1) {
            Ok(file) => {
                let mut state = shared.state();
                if state.want.as_ref().is_some_and(|(_, r)| *r == want.1) {
                    state.ready.push_back(file);
                }
            }
            Err(e) => {
                tracing::warn!("header helper: {e}; creates make their own");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_format::{Role, VolumeParams};

    fn take_within(pool: &ReadyFiles, volume: &Arc<Volume>, recipients: &[PublicIdentity]) -> Option<NewFile> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(f) = pool.take(volume, recipients) {
                return Some(f);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    #[test]
    fn ready_files_are_for_exactly_the_wanted_recipients_and_each_is_handed_out_once() {
        let alice = Arc::new(Identity::generate("alice", &mut OsRng).unwrap());
        let bob = Identity::generate("bob", &mut OsRng).unwrap();
        let (mut volume, name_key) = Volume::create(&alice, VolumeParams::default(), &mut OsRng).unwrap();
        volume.add_member(&name_key, bob.public(), "bob", Role::Member, &mut OsRng).unwrap();
        volume.sign(&alice).unwrap();
        let volume = Arc::new(volume);
        let pool = ReadyFiles::new(alice.clone());
        let only_alice = [*alice.public()];
        let with_bob = [*alice.public(), *bob.public()];

        assert!(pool.take(&volume, &only_alice).is_none(), "nothing is made before it is wanted");
        let files: Vec<_> = (0..3).map(|_| take_within(&pool, &volume, &only_alice).expect("made ahead")).collect();
        let mut ids = Vec::new();
        for f in &files {
            let header = Header::open(&f.bytes, &volume).expect("a signed header that verifies");
            assert!(header.is_recipient(&alice.id()) && !header.is_recipient(&bob.id()));
            assert!(header.file_key(&alice).is_ok());
            ids.push(header.file_id);
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3, "a new file id, and key, every time");

        // Another recipient set: nothing made for the old one is handed out.
        let f = take_within(&pool, &volume, &with_bob).expect("made ahead for the new set");
        let header = Header::open(&f.bytes, &volume).unwrap();
        assert!(header.is_recipient(&alice.id()) && header.is_recipient(&bob.id()));
        assert!(header.file_key(&bob).is_ok());
    }
}
