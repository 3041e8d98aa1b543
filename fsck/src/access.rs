//! "Who can read what", for stewards: per member, the files whose header
//! holds a key for them and their plaintext bytes, and the files nobody
//! but their creator (the writer, sole recipient) can read.

use std::{collections::HashMap, sync::Mutex};

use serde::Serialize;
use tresor_format::{Header, MemberId, Volume};

use crate::walk::Loc;

/// Paths listed per member for files only their creator can read.
const EXAMPLES: usize = 20;

#[derive(Clone, Debug, Default, Serialize)]
pub struct AccessRow {
    pub member: String,
    pub id: String,
    pub role: String,
    /// Files this member holds a key for.
    pub files_readable: u64,
    /// Their plaintext bytes.
    pub bytes_readable: u64,
    /// Files whose only reader is this member, who wrote them.
    pub sole_reader_files: u64,
    pub sole_reader_bytes: u64,
    /// Up to 20 of those, by path.
    pub sole_reader_examples: Vec<String>,
}

pub(crate) struct Table(HashMap<MemberId, Mutex<AccessRow>>);

impl Table {
    pub fn new(volume: &Volume) -> Table {
        Table(
            volume
                .members()
                .iter()
                .map(|m| {
                    let row = AccessRow {
                        member: m.name.clone(),
                        id: m.id().to_string(),
                        role: m.role.as_str().into(),
                        ..AccessRow::default()
                    };
                    (m.id(), Mutex::new(row))
                })
                .collect(),
        )
    }

    pub fn add(&self, header: &Header, plain: u64, loc: &Loc) {
        let mut readers = 0;
        for r in header.recipients() {
            readers += 1;
            if let Some(row) = self.0.get(&r) {
                let mut row = row.lock().unwrap();
                row.files_readable += 1;
                row.bytes_readable += plain;
            }
        }
        if readers == 1 && header.is_recipient(&header.writer()) {
            if let Some(row) = self.0.get(&header.writer()) {
                let mut row = row.lock().unwrap();
                row.sole_reader_files += 1;
                row.sole_reader_bytes += plain;
                if row.sole_reader_examples.len() < EXAMPLES {
                    row.sole_reader_examples.push(loc.plain.clone().unwrap_or_else(|| loc.backing.clone()));
                }
            }
        }
    }

    /// The rows in registry order.
    pub fn rows(self, volume: &Volume) -> Vec<AccessRow> {
        let mut map = self.0;
        volume.members().iter().filter_map(|m| map.remove(&m.id())).map(|r| r.into_inner().unwrap()).collect()
    }
}
