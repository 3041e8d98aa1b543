//! What the mount and the CLI hand the writer: an [`Event`] (a record with
//! the caller's fields and the plaintext of the sealed ones), and
//! [`complete`], which seals, links and signs it exactly as the writer does.

use tresor_format::Identity;
use tresor_sys::audit_io;

use crate::chain;
use crate::record::{fit_sealed, fit_text, Op, Record, SetAttr, MAX_RECIPIENTS};
use crate::seal::{Field, PathSealer};

/// Who and what a record is about: a record with the caller's fields
/// filled in, and the plaintext of the fields that are sealed.
#[derive(Clone, Debug)]
pub struct Event {
    pub(crate) record: Record,
    path: Option<Vec<u8>>,
    new_path: Option<Vec<u8>>,
    xattr: Option<Vec<u8>>,
}

impl Event {
    pub fn new(op: Op) -> Event {
        Event { record: Record::new(op), path: None, new_path: None, xattr: None }
    }

    /// The requesting process.
    pub fn by(mut self, uid: u32, gid: u32, pid: u32) -> Event {
        (self.record.uid, self.record.gid, self.record.pid) = (uid, gid, pid);
        self
    }

    /// This process (a CLI command acting for itself).
    pub fn by_self(self) -> Event {
        let (uid, gid) = audit_io::uid_gid();
        self.by(uid, gid, std::process::id())
    }

    /// The plaintext path, relative to the volume root.
    pub fn path(mut self, path: impl Into<Vec<u8>>) -> Event {
        self.path = Some(path.into());
        self
    }

    pub fn new_path(mut self, path: impl Into<Vec<u8>>) -> Event {
        self.new_path = Some(path.into());
        self
    }

    pub fn xattr(mut self, name: impl Into<Vec<u8>>) -> Event {
        self.xattr = Some(name.into());
        self
    }

    /// 0 for success, else the errno returned.
    pub fn result(mut self, errno: i32) -> Event {
        self.record.result = errno;
        self
    }

    pub fn intent(mut self, intent: impl Into<String>) -> Event {
        self.record.intent = Some(intent.into());
        self
    }

    pub fn bytes(mut self, read: u64, written: u64) -> Event {
        self.record.bytes_read = Some(read);
        self.record.bytes_written = Some(written);
        self
    }

    pub fn setattr(mut self, attr: SetAttr) -> Event {
        self.record.setattr = Some(attr);
        self
    }

    pub fn recipients(mut self, ids: Vec<[u8; 16]>) -> Event {
        self.record.recipients = Some(ids);
        self
    }

    /// The member a grant, revoke or membership change is about.
    pub fn subject(mut self, member: [u8; 16]) -> Event {
        self.record.subject = Some(member.to_vec());
        self
    }

    pub fn rekeyed(mut self, rekeyed: bool) -> Event {
        self.record.rekeyed = Some(rekeyed);
        self
    }

    pub fn offset(mut self, offset: u64) -> Event {
        self.record.offset = Some(offset);
        self
    }

    /// A prune record: the segment removed.
    pub fn pruned(mut self, pruned: crate::record::Pruned) -> Event {
        self.record.prune = Some(pruned);
        self
    }

    pub fn op(&self) -> Op {
        self.record.op
    }

    /// The record as built so far: for writers that stamp the fields the
    /// log's writer otherwise fills in (test vectors, tools).
    pub fn record_mut(&mut self) -> &mut Record {
        &mut self.record
    }
}

/// Completes a stamped record (seq, time, host, mount id, member, process
/// set) as the writer does: seals its confidential fields, links it to
/// `prev`, and for a checkpoint adds the chain hash and the signature (and,
/// when the caller set its Merkle `root`, the note signature `nsig`).
/// Pure, so the test vectors build logs byte for byte.
pub fn complete(event: Event, sealer: &PathSealer, identity: &Identity, prev: &[u8; 32]) -> Record {
    let Event { mut record, path, new_path, xattr } = event;
    let (mount_id, seq) = (record.mount_id, record.seq);
    let seal = |field, plain: Option<Vec<u8>>| plain.map(|p| sealer.seal(&mount_id, seq, field, &fit_sealed(p)));
    record.options = record.options.take().map(fit_text);
    record.intent = record.intent.take().map(fit_text);
    record.process = fit_text(std::mem::take(&mut record.process));
    if let Some(ids) = &mut record.recipients {
        ids.truncate(MAX_RECIPIENTS);
    }
    record.path = seal(Field::Path, path);
    record.new_path = seal(Field::NewPath, new_path);
    record.xattr = seal(Field::Xattr, xattr);
    record.prev = *prev;
    if record.op == Op::Checkpoint {
        record.chain = Some(prev.to_vec());
        // Version 2: the caller set the Merkle root of the records before
        // (seq of them); its note is signed, then the record as before.
        record.nsig = record.root.as_deref().and_then(|root| {
            let text = crate::note::text(&mount_id, seq, root.try_into().ok()?);
            Some(tresor_format::audit::sign_note(identity, &text).expect("note text holds no NUL").to_vec())
        });
        record.sig = None;
        let body = chain::checkpoint_body(&mount_id, seq, prev, &record.to_bytes());
        record.sig = Some(tresor_format::audit::sign_checkpoint(identity, &body).to_vec());
    }
    record
}
