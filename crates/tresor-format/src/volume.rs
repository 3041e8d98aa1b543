//! The volume file (`tresor.volume` at the root of the backing directory):
//! volume parameters, the member registry with roles, the name key wrapped
//! for each member, the directory policies (default recipients per
//! directory IV), and a steward's signature over all of it.
//!
//! Policies live in the registry rather than in per-directory files so that
//! the generation that protects the registry from rollback protects them
//! too: a policy cannot be deleted or replaced with an older one without
//! rolling back (or forging) the whole registry.

use ed25519_dalek::VerifyingKey;
use rand_core::CryptoRngCore;

use std::collections::BTreeMap;

use crate::content::Suite;
use crate::error::{Error, Result, Structure};
use crate::identity::{Identity, PublicIdentity};
use crate::keys::{self, domain, MemberId, NameKey, Stanza, SIGNATURE_LEN};
use crate::names::DirIv;
use crate::wire::{check_display_name, put_short_str, put_u16, put_u32, put_u64, Reader};

pub const VOLUME_MAGIC: &[u8; 8] = b"TRSRVOLM";
/// Version 2 added the directory policies (they were `tresor.policy` files);
/// version 3 the signing time and expiry (and, outside this file, tagged
/// directory IVs and special-file records: FORMAT.md §1.3). Version 2 is
/// read only by [`Volume::open_for_migration`].
pub const VOLUME_VERSION: u16 = 3;
/// The version `tresor migrate` converts from.
pub const VOLUME_VERSION_MIGRATABLE: u16 = 2;
/// How long a registry stays valid after it is signed unless a steward
/// chooses otherwise: the longest a node with no state of its own can be
/// shown an older registry (FORMAT.md §5.4, THREAT-MODEL.md).
pub const DEFAULT_VALIDITY_SECS: u64 = 90 * 86_400;
/// The longest validity a steward may give a registry.
pub const MAX_VALIDITY_SECS: u64 = 5 * 365 * 86_400;
pub const MIN_BLOCK_SIZE: u32 = 4096;
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
pub const MAX_MEMBERS: usize = 4096;
/// Directories with a policy, per volume.
pub const MAX_POLICIES: usize = 65536;
/// Default recipients per directory policy.
pub const MAX_DEFAULT_RECIPIENTS: usize = 1024;
/// Members removed from the registry whose public keys it keeps, so their
/// audit logs and signatures stay verifiable (FORMAT.md §5.1).
pub const MAX_RETIRED: usize = 65535;
/// The longest audit log directory a registry can name.
pub const MAX_AUDIT_DIR: usize = 1024;
/// The largest volume file a reader accepts (FORMAT.md §5.4). 4096 members
/// take under 1 MiB; the rest is room for policies. Readers bound their
/// read of `tresor.volume` by this before parsing anything.
pub const MAX_VOLUME_LEN: usize = 16 << 20;
const W: Structure = Structure::VolumeFile;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Role {
    /// Manages members, grants and revokes, signs the registry and policies.
    Steward = 1,
    /// Reads the files granted to them; creates files.
    Member = 2,
    /// Verifies audit logs; holds no content keys.
    Auditor = 3,
}

impl Role {
    fn from_u8(v: u8) -> Result<Role> {
        match v {
            1 => Ok(Role::Steward),
            2 => Ok(Role::Member),
            3 => Ok(Role::Auditor),
            _ => Err(Error::malformed(W, format!("unknown role {v}"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Steward => "steward",
            Role::Member => "member",
            Role::Auditor => "auditor",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub role: Role,
    pub public: PublicIdentity,
    /// The volume name key wrapped for this member.
    pub name_key: Stanza,
    /// `public.id()`, computed once: lookups by id are on every verify.
    id: MemberId,
}

impl Member {
    pub fn id(&self) -> MemberId {
        self.id
    }
}

/// Parameters fixed when a volume is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeParams {
    pub suite: Suite,
    /// Plaintext bytes per content block: a power of two, 4 KiB to 1 MiB.
    pub block_size: u32,
    /// Bytes reserved for every file header (content starts there). One
    /// size for the whole volume, so that a file's plaintext size follows
    /// from its length alone and `stat` never opens a file.
    pub header_len: u32,
}

impl Default for VolumeParams {
    /// Chosen from `benches/`: see FORMAT.md, "Choice of defaults".
    fn default() -> Self {
        VolumeParams { suite: Suite::Aes256GcmSiv, block_size: 4096, header_len: crate::header::DEFAULT_RESERVED_LEN }
    }
}

impl VolumeParams {
    fn check(&self) -> Result<(), &'static str> {
        if !self.block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&self.block_size) {
            return Err("block size must be a power of two from 4 KiB to 1 MiB");
        }
        crate::header::check_reserved(self.header_len, crate::header::header_len(1))
            .map_err(|_| "header size must be a multiple of 512 from 512 bytes to 1 MiB")?;
        Ok(())
    }
}

/// A member removed from the registry: kept (public keys, name, last role)
/// so that what they signed while a member, audit logs above all, still
/// verifies against the registry, and so they can still be found by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retired {
    pub name: String,
    /// Their role when they were removed.
    pub role: Role,
    pub public: PublicIdentity,
    /// The registry generation that removed them.
    pub retired_at: u64,
}

impl Retired {
    pub fn id(&self) -> MemberId {
        self.public.id()
    }
}

/// What the stewards require of every mount's and command's audit log
/// (FORMAT.md §5.1; enforced by the mount and the CLI, docs/AUDIT.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditPolicy {
    /// Logging may not be turned off (`audit=off` is refused).
    pub required: bool,
    /// Every log must export its checkpoints to an anchor.
    pub anchors_required: bool,
    /// The longest interval between log syncs a mount may choose, in
    /// milliseconds (the power-loss window); 0: no bound.
    pub max_sync_ms: u32,
    /// Where logs go: an absolute directory every node mounts; `None`:
    /// the volume's own `tresor.audit`.
    pub dir: Option<String>,
}

impl AuditPolicy {
    fn check(&self) -> Result<(), &'static str> {
        if let Some(dir) = &self.dir {
            if !dir.starts_with('/') || dir.len() > MAX_AUDIT_DIR || dir.contains('\0') || dir.contains(',') {
                return Err(
                    "the audit directory must be an absolute path of at most 1024 bytes, without NUL or commas",
                );
            }
        }
        Ok(())
    }
}

/// A verified (or freshly built and signed) volume file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub id: [u8; 16],
    pub params: VolumeParams,
    /// Incremented on every change of the registry, so a client that saw
    /// generation N can refuse an older file (registry rollback).
    pub generation: u64,
    /// Unix seconds when the registry was signed.
    pub signed_at: u64,
    /// Unix seconds from which readers refuse this registry: a steward
    /// renews it (signs it again) before then. Bounds how long a copy put
    /// back by the storage can be passed off to a node that has not seen a
    /// newer one.
    pub expires_at: u64,
    members: Vec<Member>,
    /// Directory IV → default recipients of files created below that
    /// directory (FORMAT.md §9). Sorted by IV, as stored.
    policies: BTreeMap<DirIv, Vec<MemberId>>,
    /// What every audit log of this volume must be.
    pub audit: AuditPolicy,
    /// Former members, oldest first.
    retired: Vec<Retired>,
    signer: MemberId,
    signature: [u8; SIGNATURE_LEN],
}

fn name_key_aad(volume_id: &[u8; 16]) -> Vec<u8> {
    [b"tresor/v1/name-key\0".as_slice(), volume_id].concat()
}

impl Volume {
    /// Creates a volume whose first member is `steward`, and signs it.
    pub fn create(steward: &Identity, params: VolumeParams, rng: &mut impl CryptoRngCore) -> Result<(Volume, NameKey)> {
        params.check().map_err(|r| Error::InvalidArgument(r.into()))?;
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let name_key = NameKey::generate(rng);
        let mut volume = Volume {
            id,
            params,
            generation: 0,
            signed_at: 0,
            expires_at: 0,
            members: Vec::new(),
            policies: BTreeMap::new(),
            audit: AuditPolicy { required: true, ..AuditPolicy::default() },
            retired: Vec::new(),
            signer: steward.id(),
            signature: [0; SIGNATURE_LEN],
        };
        volume.add_member(&name_key, steward.public(), steward.name(), Role::Steward, rng)?;
        volume.sign(steward)?;
        Ok((volume, name_key))
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, id: &MemberId) -> Option<&Member> {
        self.members.iter().find(|m| m.id() == *id)
    }

    pub fn signer(&self) -> MemberId {
        self.signer
    }

    /// Former members, oldest removal first.
    pub fn retired(&self) -> &[Retired] {
        &self.retired
    }

    /// The former member with id `id`, if they are not a member now.
    pub fn former(&self, id: &MemberId) -> Option<&Retired> {
        self.retired.iter().rev().find(|r| r.id() == *id)
    }

    /// Sets the audit policy; the volume must be signed again.
    pub fn set_audit_policy(&mut self, policy: AuditPolicy) -> Result<()> {
        policy.check().map_err(|r| Error::InvalidArgument(r.into()))?;
        self.audit = policy;
        Ok(())
    }

    /// Adds a member; the volume must be signed again before it is written.
    pub fn add_member(
        &mut self,
        name_key: &NameKey,
        public: &PublicIdentity,
        name: &str,
        role: Role,
        rng: &mut impl CryptoRngCore,
    ) -> Result<()> {
        check_display_name(name, crate::identity::NAME_MAX).map_err(|r| Error::InvalidArgument(r.into()))?;
        if self.member(&public.id()).is_some() {
            return Err(Error::InvalidArgument(format!("{} is already a member", public.id())));
        }
        // Names are how stewards and auditors name members on the command
        // line: two members of one name would make every such use ambiguous.
        if self.members.iter().any(|m| m.name == name) {
            return Err(Error::InvalidArgument(format!("a member is already named {name:?}: choose another name")));
        }
        if self.members.len() >= MAX_MEMBERS {
            return Err(Error::InvalidArgument("too many members".into()));
        }
        let stanza = Stanza::wrap(name_key.as_bytes(), public, &name_key_aad(&self.id), rng)?;
        // Added back: a member again, no longer a former one.
        self.retired.retain(|r| r.id() != public.id());
        self.members.push(Member { name: name.to_owned(), role, public: *public, name_key: stanza, id: public.id() });
        Ok(())
    }

    /// Removes a member; the volume must be signed again before it is written.
    /// (The name key is not changed: names are volume-wide metadata, and a
    /// removed member's file access ends with their stanzas.)
    /// The member is also dropped from every directory policy.
    pub fn remove_member(&mut self, id: &MemberId) -> Option<Member> {
        let at = self.members.iter().position(|m| m.id() == *id)?;
        self.drop_from_policies(id);
        let removed = self.members.remove(at);
        if self.retired.len() >= MAX_RETIRED {
            self.retired.remove(0);
        }
        self.retired.push(Retired {
            name: removed.name.clone(),
            role: removed.role,
            public: removed.public,
            retired_at: self.generation + 1,
        });
        Some(removed)
    }

    /// A member who becomes an auditor is dropped from every directory
    /// policy: auditors hold no content keys.
    pub fn set_role(&mut self, id: &MemberId, role: Role) -> Result<()> {
        let member = self.members.iter_mut().find(|m| m.id() == *id);
        member.ok_or_else(|| Error::InvalidArgument(format!("{id} is not a member")))?.role = role;
        if role == Role::Auditor {
            self.drop_from_policies(id);
        }
        Ok(())
    }

    fn drop_from_policies(&mut self, id: &MemberId) {
        for defaults in self.policies.values_mut() {
            defaults.retain(|d| d != id);
        }
    }

    /// The default recipients of the directory with IV `dir`, if it has a
    /// policy of its own (an empty list is a policy: "nobody by default").
    pub fn policy(&self, dir: &DirIv) -> Option<&[MemberId]> {
        self.policies.get(dir).map(Vec::as_slice)
    }

    /// Every directory policy, by directory IV.
    pub fn policies(&self) -> impl Iterator<Item = (&DirIv, &[MemberId])> {
        self.policies.iter().map(|(iv, d)| (iv, d.as_slice()))
    }

    /// Sets the policy of the directory with IV `dir`: files created below
    /// it (down to the next directory with a policy) are wrapped for their
    /// creator and `defaults`. Every default must be a steward or member.
    /// The volume must be signed again before it is written.
    pub fn set_policy(&mut self, dir: DirIv, defaults: &[MemberId]) -> Result<()> {
        let mut list: Vec<MemberId> = Vec::with_capacity(defaults.len());
        for id in defaults {
            match self.member(id) {
                None => return Err(Error::InvalidArgument(format!("{id} is not a member of this volume"))),
                Some(m) if m.role == Role::Auditor => {
                    return Err(Error::InvalidArgument(format!(
                        "{} is an auditor: auditors hold no content keys",
                        m.name
                    )))
                }
                Some(_) => {}
            }
            if !list.contains(id) {
                list.push(*id);
            }
        }
        if list.len() > MAX_DEFAULT_RECIPIENTS {
            return Err(Error::InvalidArgument(format!("at most {MAX_DEFAULT_RECIPIENTS} default recipients")));
        }
        if !self.policies.contains_key(&dir) && self.policies.len() >= MAX_POLICIES {
            return Err(Error::InvalidArgument(format!("at most {MAX_POLICIES} directory policies per volume")));
        }
        self.policies.insert(dir, list);
        Ok(())
    }

    /// Removes the policy of the directory with IV `dir` (its files then
    /// follow the nearest ancestor's). Returns false if it had none.
    pub fn remove_policy(&mut self, dir: &DirIv) -> bool {
        self.policies.remove(dir).is_some()
    }

    /// How long each signature keeps the registry valid: the span of the
    /// last signature, or the default for a registry never signed with one.
    pub fn validity(&self) -> u64 {
        match self.expires_at.checked_sub(self.signed_at) {
            Some(v) if v > 0 => v,
            _ => DEFAULT_VALIDITY_SECS,
        }
    }

    /// Sets how long this and later signatures keep the registry valid
    /// (1 second to [`MAX_VALIDITY_SECS`]); takes effect at the next signature.
    pub fn set_validity(&mut self, secs: u64) -> Result<()> {
        if secs == 0 || secs > MAX_VALIDITY_SECS {
            return Err(Error::InvalidArgument(format!(
                "a registry's validity must be from 1 second to {} days",
                MAX_VALIDITY_SECS / 86_400
            )));
        }
        self.expires_at = self.signed_at + secs;
        Ok(())
    }

    /// Refuses a registry whose validity has ended at `now` (Unix seconds).
    pub fn check_current(&self, now: u64) -> Result<()> {
        if now >= self.expires_at {
            return Err(Error::Expired { what: W, signed_at: self.signed_at, expired_at: self.expires_at });
        }
        Ok(())
    }

    /// Signs the registry now (the system clock); see [`Volume::sign_at`].
    pub fn sign(&mut self, steward: &Identity) -> Result<()> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.sign_at(steward, now)
    }

    /// Signs the registry as `steward`, who must be a steward in it, at
    /// `now` (Unix seconds): bumps the generation and renews the validity
    /// for the same span as before.
    pub fn sign_at(&mut self, steward: &Identity, now: u64) -> Result<()> {
        match self.member(&steward.id()) {
            Some(m) if m.role == Role::Steward => {}
            Some(_) => {
                return Err(Error::SignerNotAllowed {
                    what: W,
                    signer: steward.id(),
                    reason: "only a steward may sign the registry",
                })
            }
            None => return Err(Error::UnknownSigner { what: W, signer: steward.id() }),
        }
        if !self.members.iter().any(|m| m.role == Role::Steward) {
            return Err(Error::InvalidArgument("a volume needs at least one steward".into()));
        }
        let validity = self.validity();
        self.generation += 1;
        self.signed_at = now;
        self.expires_at =
            now.checked_add(validity).ok_or_else(|| Error::InvalidArgument("time out of range".into()))?;
        self.signer = steward.id();
        self.signature = keys::sign(steward, domain::VOLUME, &self.body());
        Ok(())
    }

    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.members.len() * 220);
        out.extend_from_slice(VOLUME_MAGIC);
        put_u16(&mut out, VOLUME_VERSION);
        out.push(self.params.suite as u8);
        put_u32(&mut out, self.params.block_size);
        put_u32(&mut out, self.params.header_len);
        out.extend_from_slice(&self.id);
        put_u64(&mut out, self.generation);
        put_u64(&mut out, self.signed_at);
        put_u64(&mut out, self.expires_at);
        put_u16(&mut out, self.members.len() as u16);
        for m in &self.members {
            out.push(m.role as u8);
            put_short_str(&mut out, &m.name);
            out.extend_from_slice(&m.public.to_bytes());
            m.name_key.write(&mut out);
        }
        put_u32(&mut out, self.policies.len() as u32);
        for (iv, defaults) in &self.policies {
            out.extend_from_slice(&iv.0);
            put_u16(&mut out, defaults.len() as u16);
            for id in defaults {
                out.extend_from_slice(&id.0);
            }
        }
        out.push(u8::from(self.audit.required) | u8::from(self.audit.anchors_required) << 1);
        put_u32(&mut out, self.audit.max_sync_ms);
        let dir = self.audit.dir.as_deref().unwrap_or("");
        put_u16(&mut out, dir.len() as u16);
        out.extend_from_slice(dir.as_bytes());
        put_u16(&mut out, self.retired.len() as u16);
        for r in &self.retired {
            out.push(r.role as u8);
            put_short_str(&mut out, &r.name);
            out.extend_from_slice(&r.public.to_bytes());
            put_u64(&mut out, r.retired_at);
        }
        out.extend_from_slice(&self.signer.0);
        out
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses and verifies a volume file. `pinned` holds the steward keys the
    /// client trusts; the signer must be one of them and a steward listed in
    /// the registry it signed.
    pub fn open(bytes: &[u8], pinned: &[VerifyingKey]) -> Result<Volume> {
        let volume = Self::open_self_signed(bytes)?;
        let signer = volume.member(&volume.signer).expect("checked by open_self_signed");
        if !pinned.contains(&signer.public.ed25519) {
            return Err(Error::UnknownSigner { what: W, signer: volume.signer });
        }
        Ok(volume)
    }

    /// Parses and verifies a volume file against the steward key it names
    /// itself. This proves consistency, not authenticity: use it only to
    /// pin a steward key on first use, after showing its fingerprint.
    pub fn open_self_signed(bytes: &[u8]) -> Result<Volume> {
        Self::parse(bytes, false)
    }

    /// Opens a version 2 volume file (no signing time or expiry) for
    /// `tresor migrate`, verified against `pinned` like [`Volume::open`];
    /// a current one opens too. A version 2 registry comes back with
    /// `signed_at = expires_at = 0`: expired until a steward signs it as
    /// version 3.
    pub fn open_for_migration(bytes: &[u8], pinned: &[VerifyingKey]) -> Result<Volume> {
        let volume = Self::parse(bytes, true)?;
        let signer = volume.member(&volume.signer).expect("checked by parse");
        if !pinned.contains(&signer.public.ed25519) {
            return Err(Error::UnknownSigner { what: W, signer: volume.signer });
        }
        Ok(volume)
    }

    /// [`Volume::open_self_signed`] for a current or a version 2 file (to
    /// pin its steward before `tresor migrate`).
    pub fn open_self_signed_any_version(bytes: &[u8]) -> Result<Volume> {
        Self::parse(bytes, true)
    }

    /// The version of a volume file, from its first 10 bytes.
    pub fn version_of(bytes: &[u8]) -> Result<u16> {
        let mut r = Reader::new(bytes, W);
        if r.take(8).ok() != Some(VOLUME_MAGIC.as_slice()) {
            return Err(Error::BadMagic { what: W });
        }
        r.u16()
    }

    fn parse(bytes: &[u8], migrating: bool) -> Result<Volume> {
        if bytes.len() > MAX_VOLUME_LEN {
            return Err(Error::malformed(W, format!("{} bytes, more than the largest volume file", bytes.len())));
        }
        let version = Self::version_of(bytes)?;
        let legacy = migrating && version == VOLUME_VERSION_MIGRATABLE;
        let mut r = Reader::new(bytes, W);
        if legacy {
            r.magic_and_version(VOLUME_MAGIC, VOLUME_VERSION_MIGRATABLE)?;
        } else {
            r.magic_and_version(VOLUME_MAGIC, VOLUME_VERSION)?;
        }
        let suite = Suite::from_u8(r.u8()?)?;
        let params = VolumeParams { suite, block_size: r.u32()?, header_len: r.u32()? };
        params.check().map_err(|reason| Error::malformed(W, reason))?;
        let id = r.array()?;
        let generation = r.u64()?;
        let (signed_at, expires_at) = if legacy { (0, 0) } else { (r.u64()?, r.u64()?) };
        if !legacy && (expires_at <= signed_at || expires_at - signed_at > MAX_VALIDITY_SECS) {
            return Err(Error::malformed(W, "validity out of range (expires before it was signed, or after 5 years)"));
        }
        let count = r.u16()? as usize;
        if count == 0 || count > MAX_MEMBERS {
            return Err(Error::malformed(W, "member count out of range"));
        }
        let mut members: Vec<Member> = Vec::with_capacity(count);
        // A set, not a scan: the parse runs before the signature check, so a
        // hostile file must not make it quadratic.
        let mut seen = std::collections::HashSet::with_capacity(count);
        for _ in 0..count {
            let role = Role::from_u8(r.u8()?)?;
            let name = r.short_str(crate::identity::NAME_MAX)?;
            let keys: [u8; 64] = r.array()?;
            let public = PublicIdentity::from_keys(keys[..32].try_into().unwrap(), keys[32..].try_into().unwrap())
                .map_err(|_| Error::malformed(W, "invalid member public key"))?;
            let name_key = Stanza::read(&mut r)?;
            let id = public.id();
            if name_key.recipient != id {
                return Err(Error::malformed(W, "name-key stanza names another member"));
            }
            if !seen.insert(id) {
                return Err(Error::malformed(W, "duplicate member"));
            }
            members.push(Member { name, role, public, name_key, id });
        }
        let policies = read_policies(&mut r, &members)?;
        let (audit, retired) = if legacy {
            // Version 2 had neither: migration gives the default policy.
            (AuditPolicy { required: true, ..AuditPolicy::default() }, Vec::new())
        } else {
            (read_audit_policy(&mut r)?, read_retired(&mut r, &seen)?)
        };
        let signer = MemberId(r.array()?);
        let body_len = r.pos();
        let signature = r.array()?;
        r.finish()?;
        let signer_key = match members.iter().find(|m| m.id() == signer) {
            Some(m) if m.role == Role::Steward => m.public.ed25519,
            Some(_) => {
                return Err(Error::SignerNotAllowed { what: W, signer, reason: "only a steward may sign the registry" })
            }
            None => return Err(Error::UnknownSigner { what: W, signer }),
        };
        keys::verify(&signer_key, domain::VOLUME, &bytes[..body_len], &signature, W)?;
        Ok(Volume {
            id,
            params,
            generation,
            signed_at,
            expires_at,
            members,
            policies,
            audit,
            retired,
            signer,
            signature,
        })
    }

    /// Unwraps the name key with a member's identity.
    pub fn name_key(&self, identity: &Identity) -> Result<NameKey> {
        let member = self.member(&identity.id()).ok_or(Error::NotRecipient { member: identity.id() })?;
        let key = member.name_key.unwrap(identity, &name_key_aad(&self.id))?;
        Ok(NameKey::from_bytes(*key))
    }
}

fn read_audit_policy(r: &mut Reader<'_>) -> Result<AuditPolicy> {
    let flags = r.u8()?;
    if flags & !0b11 != 0 {
        return Err(Error::malformed(W, "unknown audit policy flags"));
    }
    let max_sync_ms = r.u32()?;
    let len = r.u16()? as usize;
    let dir = std::str::from_utf8(r.take(len)?).map_err(|_| Error::malformed(W, "audit directory is not UTF-8"))?;
    let policy = AuditPolicy {
        required: flags & 1 != 0,
        anchors_required: flags & 2 != 0,
        max_sync_ms,
        dir: (!dir.is_empty()).then(|| dir.to_owned()),
    };
    policy.check().map_err(|reason| Error::malformed(W, reason))?;
    Ok(policy)
}

/// Former members: none a current member, none twice.
fn read_retired(r: &mut Reader<'_>, members: &std::collections::HashSet<MemberId>) -> Result<Vec<Retired>> {
    let count = r.u16()? as usize;
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let role = Role::from_u8(r.u8()?)?;
        let name = r.short_str(crate::identity::NAME_MAX)?;
        let keys: [u8; 64] = r.array()?;
        let public = PublicIdentity::from_keys(keys[..32].try_into().unwrap(), keys[32..].try_into().unwrap())
            .map_err(|_| Error::malformed(W, "invalid former member public key"))?;
        let retired_at = r.u64()?;
        if members.contains(&public.id()) || !seen.insert(public.id()) {
            return Err(Error::malformed(W, "a former member is listed twice or is a member"));
        }
        out.push(Retired { name, role, public, retired_at });
    }
    Ok(out)
}

/// Reads the directory policies (FORMAT.md §9): strictly ascending IVs (one
/// spelling per registry, and a duplicate is caught by a comparison, not a
/// search), each default a listed steward or member, no duplicates.
fn read_policies(r: &mut Reader<'_>, members: &[Member]) -> Result<BTreeMap<DirIv, Vec<MemberId>>> {
    let count = r.u32()? as usize;
    if count > MAX_POLICIES {
        return Err(Error::malformed(W, "too many directory policies"));
    }
    let roles: std::collections::HashMap<MemberId, Role> = members.iter().map(|m| (m.id(), m.role)).collect();
    let mut policies = BTreeMap::new();
    let mut last: Option<DirIv> = None;
    for _ in 0..count {
        let iv = DirIv(r.array()?);
        if last.is_some_and(|l| l >= iv) {
            return Err(Error::malformed(W, "directory policies not in ascending IV order (or listed twice)"));
        }
        last = Some(iv);
        let n = r.u16()? as usize;
        if n > MAX_DEFAULT_RECIPIENTS {
            return Err(Error::malformed(W, "too many default recipients in a directory policy"));
        }
        let mut defaults = Vec::with_capacity(n);
        let mut seen = std::collections::HashSet::with_capacity(n);
        for _ in 0..n {
            let id = MemberId(r.array()?);
            match roles.get(&id) {
                None => return Err(Error::malformed(W, "a directory policy names someone who is not a member")),
                Some(Role::Auditor) => return Err(Error::malformed(W, "a directory policy names an auditor")),
                Some(_) => {}
            }
            if !seen.insert(id) {
                return Err(Error::malformed(W, "a directory policy names a recipient twice"));
            }
            defaults.push(id);
        }
        policies.insert(iv, defaults);
    }
    Ok(policies)
}
