//! Records as people and programs read them: one typed [`Row`] per record,
//! written as JSON (through serde), CSV or a table line. JSON keeps its
//! types stable whatever the values: integers that may pass 2^53 (times in
//! nanoseconds, byte counts, offsets, sizes) are always strings, so no
//! reader rounds them. Table lines escape control, bidi and invisible
//! characters, so a name cannot rewrite the terminal or hide what it is.

use std::collections::HashMap;
use std::io::{self, Write};

use serde::{Serialize, Serializer};

use crate::chain::hex;
use crate::query::{Entry, Unreadable};
use crate::record::errno_name;
use crate::time;

/// Member names by id (current and former members).
pub type Names = HashMap<[u8; 16], String>;

fn string<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn opt_string<S: Serializer, T: std::fmt::Display>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// The attributes a setattr set.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AttrRow {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    #[serde(serialize_with = "opt_string")]
    pub size: Option<u64>,
    #[serde(serialize_with = "opt_string")]
    pub atime_ns: Option<i64>,
    #[serde(serialize_with = "opt_string")]
    pub mtime_ns: Option<i64>,
}

/// One record, typed: the JSON object of `show --json` and `who --json`.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub time: String,
    #[serde(serialize_with = "string")]
    pub time_ns: u64,
    pub host: String,
    pub mount: String,
    pub seq: u64,
    pub member: String,
    pub member_name: Option<String>,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub process: String,
    pub op: &'static str,
    pub result: String,
    pub errno: i32,
    pub path: Option<String>,
    pub new_path: Option<String>,
    pub xattr: Option<String>,
    pub intent: Option<String>,
    #[serde(serialize_with = "opt_string")]
    pub bytes_read: Option<u64>,
    #[serde(serialize_with = "opt_string")]
    pub bytes_written: Option<u64>,
    pub setattr: Option<AttrRow>,
    pub recipients: Option<Vec<String>>,
    pub subject: Option<String>,
    pub rekeyed: Option<bool>,
    #[serde(serialize_with = "opt_string")]
    pub offset: Option<u64>,
    pub options: Option<String>,
    pub log: Option<String>,
}

fn field(f: &Option<Result<String, Unreadable>>) -> Option<String> {
    f.as_ref().map(|p| p.clone().unwrap_or_else(|_| "<sealed: not readable with this key>".into()))
}

fn name_or_hex(names: &Names, id: &[u8]) -> String {
    <[u8; 16]>::try_from(id).ok().and_then(|id| names.get(&id).cloned()).unwrap_or_else(|| hex(id))
}

impl Row {
    pub fn new(e: &Entry, names: &Names, log: Option<String>) -> Row {
        let r = &e.record;
        Row {
            time: time::format_ns(r.time_ns),
            time_ns: r.time_ns,
            host: r.host.clone(),
            mount: hex(&r.mount_id),
            seq: r.seq,
            member: hex(&r.member),
            member_name: names.get(&r.member).cloned(),
            uid: r.uid,
            gid: r.gid,
            pid: r.pid,
            process: r.process.clone(),
            op: r.op.as_str(),
            result: errno_name(r.result),
            errno: r.result,
            path: field(&e.path),
            new_path: field(&e.new_path),
            xattr: field(&e.xattr),
            intent: r.intent.clone(),
            bytes_read: r.bytes_read,
            bytes_written: r.bytes_written,
            setattr: r.setattr.as_ref().map(|a| AttrRow {
                mode: a.mode,
                uid: a.uid,
                gid: a.gid,
                size: a.size,
                atime_ns: a.atime,
                mtime_ns: a.mtime,
            }),
            recipients: r.recipients.as_ref().map(|ids| ids.iter().map(|id| name_or_hex(names, id)).collect()),
            subject: r.subject.as_deref().map(|s| name_or_hex(names, s)),
            rekeyed: r.rekeyed,
            offset: r.offset,
            options: r.options.clone(),
            log,
        }
    }

    /// The details after the path in a table line or a CSV `detail` column.
    pub fn detail(&self) -> String {
        let mut d = Vec::new();
        if let Some(i) = &self.intent {
            d.push(format!("intent={i}"));
        }
        if let (Some(rd), Some(wr)) = (self.bytes_read, self.bytes_written) {
            d.push(format!("read={rd} written={wr}"));
        }
        if let Some(a) = &self.setattr {
            let mut f = Vec::new();
            f.extend(a.mode.map(|m| format!("mode={m:o}")));
            f.extend(a.uid.map(|u| format!("uid={u}")));
            f.extend(a.gid.map(|g| format!("gid={g}")));
            f.extend(a.size.map(|s| format!("size={s}")));
            f.extend(a.atime_ns.map(|_| "atime".to_owned()));
            f.extend(a.mtime_ns.map(|_| "mtime".to_owned()));
            d.push(f.join(","));
        }
        d.extend(self.xattr.as_ref().map(|x| format!("xattr={x}")));
        d.extend(self.subject.as_ref().map(|s| format!("member={s}")));
        d.extend(self.recipients.as_ref().map(|r| format!("recipients={}", r.join(","))));
        d.extend(self.rekeyed.map(|k| format!("rekeyed={k}")));
        d.extend(self.offset.map(|o| format!("offset={o}")));
        d.extend(self.options.as_ref().map(|o| format!("options={o}")));
        d.join(" ")
    }

    /// One table line, every field from the log escaped for a terminal.
    pub fn table_line(&self) -> String {
        let path = match (&self.path, &self.new_path) {
            (Some(p), Some(n)) => format!("{p} -> {n}"),
            (Some(p), None) => p.clone(),
            _ => String::new(),
        };
        let detail = self.detail();
        format!(
            "{}  {:<12} {:>6}  {:<10} uid={:<5} pid={:<7} {:<15} {:<12} {:<7} {}{}{}",
            &self.time[..23],
            terminal(&self.host),
            self.seq,
            terminal(self.member_name.as_deref().unwrap_or(&self.member)),
            self.uid,
            self.pid,
            terminal(&self.process),
            self.op,
            self.result,
            terminal(&path),
            if detail.is_empty() { "" } else { "  " },
            terminal(&detail)
        )
    }
}

/// The flat form of a [`Row`] for CSV (RFC 4180, through the `csv` crate).
#[derive(Serialize)]
struct CsvRow<'a> {
    time: &'a str,
    time_ns: u64,
    host: &'a str,
    mount: &'a str,
    seq: u64,
    member: &'a str,
    member_name: Option<&'a str>,
    uid: u32,
    gid: u32,
    pid: u32,
    process: &'a str,
    op: &'a str,
    result: &'a str,
    errno: i32,
    path: Option<&'a str>,
    new_path: Option<&'a str>,
    detail: String,
}

/// Writes rows as CSV with a header line.
pub struct Csv<W: Write>(csv::Writer<W>);

impl<W: Write> Csv<W> {
    pub fn new(w: W) -> Self {
        Csv(csv::Writer::from_writer(w))
    }

    pub fn write(&mut self, r: &Row) -> io::Result<()> {
        self.0
            .serialize(CsvRow {
                time: &r.time,
                time_ns: r.time_ns,
                host: &r.host,
                mount: &r.mount,
                seq: r.seq,
                member: &r.member,
                member_name: r.member_name.as_deref(),
                uid: r.uid,
                gid: r.gid,
                pid: r.pid,
                process: &r.process,
                op: r.op,
                result: &r.result,
                errno: r.errno,
                path: r.path.as_deref(),
                new_path: r.new_path.as_deref(),
                detail: r.detail(),
            })
            .map_err(csv_io)
    }

    /// Writes any serde row type (reports).
    pub fn serialize<T: Serialize>(&mut self, row: &T) -> io::Result<()> {
        self.0.serialize(row).map_err(csv_io)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Whether a character could mislead on a terminal: controls (escape
/// sequences, newlines), bidi overrides and isolates (which reorder what
/// follows, "Trojan Source"), and invisible ones (zero-width, BOM).
fn misleading(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}'
            | '\u{00AD}')
}

/// Text from the log as one harmless line for a terminal: misleading
/// characters become `\u{…}` escapes (`\n`, `\t` for those), a backslash
/// `\\`, so the line says exactly which characters a name holds.
pub fn terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if misleading(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Op, Record};

    #[test]
    fn json_keeps_big_integers_exact_and_any_name_valid() {
        let mut record = Record::new(Op::Release);
        record.time_ns = u64::MAX;
        record.bytes_read = Some(u64::MAX);
        record.bytes_written = Some((1 << 53) + 1);
        record.member = [1; 16];
        let e = Entry {
            record,
            path: Some(Ok("a\u{200B}b\u{202E}c\n\u{1b}[2J".into())),
            new_path: None,
            xattr: None,
            log: 0,
        };
        let names: Names = [([1; 16], "evil\u{202E}\u{0}name\"".to_owned())].into();
        let row = Row::new(&e, &names, None);
        let json = serde_json::to_string(&row).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["time_ns"], "18446744073709551615");
        assert_eq!(v["bytes_read"], "18446744073709551615");
        assert_eq!(v["bytes_written"], "9007199254740993");
        assert_eq!(v["member_name"], "evil\u{202E}\u{0}name\"", "JSON carries the name exactly");
        assert_eq!(v["path"], "a\u{200B}b\u{202E}c\n\u{1b}[2J");
        let line = row.table_line();
        assert!(line.contains(r"a\u{200b}b\u{202e}c\n\u{1b}[2J"), "{line}");
        assert!(line.contains(r"evil\u{202e}\u{0}name"), "{line}");
        assert!(!line.chars().any(misleading), "{line}");
        let mut csv = Csv::new(Vec::new());
        csv.write(&row).unwrap();
        csv.flush().unwrap();
        let text = String::from_utf8(csv.0.into_inner().unwrap()).unwrap();
        assert!(text.starts_with("time,time_ns,host,") && text.contains("18446744073709551615"), "{text}");
    }
}
