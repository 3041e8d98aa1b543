//! Directory policy (`tresor.policy` in a directory): the default recipients
//! of files created below it, signed by a steward. It is bound to the
//! directory's IV, so it cannot be copied onto another directory.

use crate::error::{Error, Result, Structure};
use crate::identity::Identity;
use crate::keys::{self, domain, MemberId, SIGNATURE_LEN};
use crate::names::DirIv;
use crate::volume::{Role, Volume};
use crate::wire::{put_u16, put_u64, Reader};

pub const POLICY_MAGIC: &[u8; 8] = b"TRSRPOLY";
pub const POLICY_VERSION: u16 = 1;
pub const MAX_DEFAULT_RECIPIENTS: usize = 1024;
const P: Structure = Structure::Policy;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub volume_id: [u8; 16],
    pub dir_iv: DirIv,
    pub issued_at: u64,
    pub default_recipients: Vec<MemberId>,
    signer: MemberId,
    signature: [u8; SIGNATURE_LEN],
}

impl Policy {
    /// A policy for the directory with IV `dir_iv`, signed by `steward`.
    pub fn create(
        volume: &Volume,
        dir_iv: DirIv,
        default_recipients: &[MemberId],
        steward: &Identity,
        issued_at: u64,
    ) -> Result<Policy> {
        let mut recipients: Vec<MemberId> = Vec::with_capacity(default_recipients.len());
        for id in default_recipients {
            match volume.member(id) {
                None => return Err(Error::InvalidArgument(format!("{id} is not a member of this volume"))),
                Some(m) if m.role == Role::Auditor => {
                    return Err(Error::InvalidArgument(format!(
                        "{} is an auditor: auditors hold no content keys",
                        m.name
                    )))
                }
                Some(_) => {}
            }
            if !recipients.contains(id) {
                recipients.push(*id);
            }
        }
        if recipients.len() > MAX_DEFAULT_RECIPIENTS {
            return Err(Error::InvalidArgument("too many default recipients".into()));
        }
        let mut policy = Policy {
            volume_id: volume.id,
            dir_iv,
            issued_at,
            default_recipients: recipients,
            signer: steward.id(),
            signature: [0; SIGNATURE_LEN],
        };
        check_signer(volume, &policy.signer)?;
        policy.signature = keys::sign(steward, domain::POLICY, &policy.body());
        Ok(policy)
    }

    pub fn signer(&self) -> MemberId {
        self.signer
    }

    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 16 * self.default_recipients.len());
        out.extend_from_slice(POLICY_MAGIC);
        put_u16(&mut out, POLICY_VERSION);
        out.extend_from_slice(&self.volume_id);
        out.extend_from_slice(&self.dir_iv.0);
        put_u64(&mut out, self.issued_at);
        put_u16(&mut out, self.default_recipients.len() as u16);
        for id in &self.default_recipients {
            out.extend_from_slice(&id.0);
        }
        out.extend_from_slice(&self.signer.0);
        out
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses and verifies a policy file: what readers use.
    pub fn open(bytes: &[u8], volume: &Volume, dir_iv: &DirIv) -> Result<Policy> {
        let policy = Policy::parse(bytes)?;
        policy.verify(volume, dir_iv)?;
        Ok(policy)
    }

    /// Parses a policy file. Structure only: call `verify` before use.
    pub fn parse(bytes: &[u8]) -> Result<Policy> {
        let mut r = Reader::new(bytes, P);
        r.magic_and_version(POLICY_MAGIC, POLICY_VERSION)?;
        let volume_id = r.array()?;
        let dir_iv = DirIv(r.array()?);
        let issued_at = r.u64()?;
        let count = r.u16()? as usize;
        if count > MAX_DEFAULT_RECIPIENTS {
            return Err(Error::malformed(P, "too many default recipients"));
        }
        let mut default_recipients = Vec::with_capacity(count);
        let mut seen = std::collections::HashSet::with_capacity(count);
        for _ in 0..count {
            let id = MemberId(r.array()?);
            if !seen.insert(id) {
                return Err(Error::malformed(P, "duplicate recipient"));
            }
            default_recipients.push(id);
        }
        let signer = MemberId(r.array()?);
        let signature = r.array()?;
        r.finish()?;
        Ok(Policy { volume_id, dir_iv, issued_at, default_recipients, signer, signature })
    }

    /// Verifies that the policy belongs to this volume and to the directory
    /// with IV `dir_iv`, and is signed by one of the volume's stewards.
    pub fn verify(&self, volume: &Volume, dir_iv: &DirIv) -> Result<()> {
        if self.volume_id != volume.id {
            return Err(Error::malformed(P, "belongs to another volume"));
        }
        if self.dir_iv != *dir_iv {
            return Err(Error::malformed(P, "belongs to another directory (copied?)"));
        }
        let signer = check_signer(volume, &self.signer)?;
        keys::verify(&signer.public.ed25519, domain::POLICY, &self.body(), &self.signature, P)?;
        if self.default_recipients.iter().any(|id| volume.member(id).is_some_and(|m| m.role == Role::Auditor)) {
            return Err(Error::malformed(P, "names an auditor as a recipient"));
        }
        Ok(())
    }
}

fn check_signer<'v>(volume: &'v Volume, signer: &MemberId) -> Result<&'v crate::volume::Member> {
    match volume.member(signer) {
        Some(m) if m.role == Role::Steward => Ok(m),
        Some(_) => Err(Error::SignerNotAllowed {
            what: P,
            signer: *signer,
            reason: "only a steward may set a directory policy",
        }),
        None => Err(Error::UnknownSigner { what: P, signer: *signer }),
    }
}
