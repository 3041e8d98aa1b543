//! What commands print. JSON only through serde, from the typed rows
//! below, one schema per command (docs/OUTPUT.md): times as RFC 3339
//! strings, integers that may pass 2^53 (what a JavaScript or jq number
//! holds exactly) as strings. Text for people, with every name escaped
//! so a member name or file name cannot move the cursor, hide itself or
//! reorder what is shown (control, bidi and zero-width characters).

use std::{borrow::Cow, io::Write};

use anyhow::Result;
use serde::{Serialize, Serializer};
use tresor_format::{MemberId, Volume};

/// `name` fit for a terminal: control characters (escape sequences,
/// newlines), bidi controls and invisible characters (zero-width space,
/// joiners, BOM) shown as escapes, a backslash as `\\`, so a name can
/// neither move the cursor nor pass for another. One rule for every
/// command: the audit reader's (`tresor_audit::rows::terminal`).
pub fn terminal(name: &str) -> Cow<'_, str> {
    Cow::Owned(tresor_audit::rows::terminal(name))
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-04T23:55:45Z`).
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| format!("@{secs}"))
}

/// Serializes a `u64` as a JSON number up to 2^53, as a string above (a
/// JSON reader with doubles would round it silently).
pub fn u64_safe<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    if *v <= 1 << 53 {
        s.serialize_u64(*v)
    } else {
        s.serialize_str(&v.to_string())
    }
}

/// [`u64_safe`] for an optional value (`null` when absent).
pub fn opt_u64_safe<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => u64_safe(v, s),
        None => s.serialize_none(),
    }
}

/// Writes `row` as one line of JSON on stdout.
pub fn json_line<T: Serialize>(row: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, row)?;
    writeln!(out)?;
    Ok(())
}

/// A member as JSON rows name them: the name (`null` for someone no longer
/// in the registry) and the member id.
#[derive(Serialize, Clone, Debug)]
pub struct MemberRef {
    pub name: Option<String>,
    pub id: String,
}

impl MemberRef {
    pub fn of(volume: &Volume, id: &MemberId) -> MemberRef {
        let name = volume.member(id).map(|m| m.name.clone()).or_else(|| volume.former(id).map(|r| r.name.clone()));
        MemberRef { name, id: id.to_string() }
    }
}

/// A reader of a file (`tresor acl --json`).
#[derive(Serialize, Clone, Debug)]
pub struct Reader {
    pub name: Option<String>,
    /// steward, member, auditor, or `removed` (no longer in the registry).
    pub role: &'static str,
    pub id: String,
}

impl Reader {
    pub fn of(volume: &Volume, id: &MemberId) -> Reader {
        let MemberRef { name, id: hex } = MemberRef::of(volume, id);
        let role = volume.member(id).map(|m| m.role.as_str()).unwrap_or("removed");
        Reader { name, role, id: hex }
    }
}

/// One member (`tresor member list --json`, `tresor info --json`).
#[derive(Serialize)]
pub struct MemberRow {
    pub name: String,
    pub role: &'static str,
    pub id: String,
    /// The public identity (tresor1…).
    pub public: String,
    /// Removed from the registry (kept so logs and headers still name them).
    pub former: bool,
    /// The registry generation that removed them, or null.
    #[serde(serialize_with = "opt_u64_safe")]
    pub removed_at_generation: Option<u64>,
}

impl MemberRow {
    pub fn new(
        name: &str,
        role: tresor_format::Role,
        public: tresor_format::PublicIdentity,
        retired_at: Option<u64>,
    ) -> MemberRow {
        MemberRow {
            name: name.to_owned(),
            role: role.as_str(),
            id: public.id().to_string(),
            public: public.to_string(),
            former: retired_at.is_some(),
            removed_at_generation: retired_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        #[serde(serialize_with = "u64_safe")]
        n: u64,
        #[serde(serialize_with = "opt_u64_safe")]
        m: Option<u64>,
    }

    #[test]
    fn integers_above_2_53_are_strings_and_times_are_rfc_3339() {
        let json = |n, m| serde_json::to_string(&Row { n, m }).unwrap();
        assert_eq!(json(1 << 53, None), r#"{"n":9007199254740992,"m":null}"#);
        assert_eq!(json((1 << 53) + 1, Some(u64::MAX)), r#"{"n":"9007199254740993","m":"18446744073709551615"}"#);
        assert_eq!(rfc3339(1_764_892_545), "2025-12-04T23:55:45Z");
        assert_eq!(terminal("a\u{200b}b\u{202e}c\x1b"), "a\\u{200b}b\\u{202e}c\\u{1b}");
    }
}
