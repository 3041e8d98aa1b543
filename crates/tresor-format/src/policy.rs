//! Directory policies and the member header rule (FORMAT.md §9,
//! THREAT-MODEL.md §4).
//!
//! A directory policy (the default recipients of files created below a
//! directory) is stored in the signed registry, keyed by the directory's IV:
//! see [`Volume::policy`]. The policy *in force* for a file is that of the
//! nearest directory, from the file's own directory up to the root, that has
//! one; the caller walks the IVs (this crate does no I/O).
//!
//! The **member header rule** decides which recipients a header may name:
//!
//! * a header signed by a steward may name any steward or member;
//! * a header signed by an ordinary member is valid only if every recipient
//!   other than the writer is a steward of the current registry or a default
//!   recipient of the policy in force for the file's current directory.
//!
//! It is a subset rule, not equality: leaving readers out never widens
//! access, and stewards are fully trusted anyway. The format verifies the
//! signature ([`Header::verify`]); the mount and the CLI apply this rule on
//! top, because only they know the file's directory.

use crate::header::Header;
use crate::keys::MemberId;
use crate::volume::{Role, Volume};

/// Why a verified header breaks the member header rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    /// A recipient is an auditor (whoever signed): auditors hold no content keys.
    #[error("recipient {recipient} is an auditor; auditors hold no content keys")]
    AuditorRecipient { recipient: MemberId },
    /// A recipient is not in the registry any more (or never was).
    #[error("recipient {recipient} is not a member of the volume")]
    UnknownRecipient { recipient: MemberId },
    /// A member-signed header names someone beyond the policy in force.
    #[error(
        "member {writer} signed a header naming {recipient}, who is neither a steward nor a default recipient of the \
         directory policy in force; only a steward may widen a file's readers"
    )]
    BeyondPolicy { writer: MemberId, recipient: MemberId },
}

/// Checks a header that already passed [`Header::verify`] against the
/// member header rule, with `in_force` the default recipients of the policy
/// in force for the file's directory (`None`: no directory up to the root has
/// a policy).
pub fn check_header(volume: &Volume, header: &Header, in_force: Option<&[MemberId]>) -> Result<(), RuleViolation> {
    let writer = header.writer();
    let writer_is_steward = volume.member(&writer).is_some_and(|m| m.role == Role::Steward);
    for recipient in header.recipients() {
        let role = volume.member(&recipient).map(|m| m.role);
        match role {
            Some(Role::Auditor) => return Err(RuleViolation::AuditorRecipient { recipient }),
            // A removed member's stanza is what a revoke removes; it is not
            // a widening, and verify already refused a removed *writer*.
            None if writer_is_steward => {}
            None => return Err(RuleViolation::UnknownRecipient { recipient }),
            Some(_) if writer_is_steward || recipient == writer => {}
            Some(Role::Steward) => {}
            Some(Role::Member) => {
                if !in_force.is_some_and(|d| d.contains(&recipient)) {
                    return Err(RuleViolation::BeyondPolicy { writer, recipient });
                }
            }
        }
    }
    Ok(())
}
