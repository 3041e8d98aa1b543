//! Access management end to end: `tresor grant`, `revoke`, `rekey`, `acl`,
//! `policy`, `member remove --rekey`, against real mounts.
//!
//! The cast: `steward` (steward), `alice` and `bob` (members), `mallory` (not
//! a member: someone with write access to the backing directory only).

mod common;

use std::{
    fs::{self, File, OpenOptions},
    io::{ErrorKind, Read, Write},
    os::{
        fd::AsFd,
        unix::fs::{FileExt, MetadataExt},
    },
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::{run_ok, Scratch, PASS};
use rand_core::{OsRng, RngCore};
use tresor_format::{
    content::BLOCK_OVERHEAD, ContentCipher, Header, Identity, Layout, NameCipher, PublicIdentity, Volume,
};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A volume with steward, alice and bob, and the steward as the default
/// recipient of everything (so the steward can grant and re-key).
struct Project {
    s: Scratch,
}

impl Project {
    fn new(name: &str) -> Project {
        let s = Scratch::new(name);
        s.identity("steward");
        s.init("backing", "steward", &[]);
        let p = Project { s };
        for who in ["alice", "bob"] {
            let public = p.s.identity(who);
            p.ok(&["member", "add", p.backing().to_str().unwrap(), &public, "--name", who]);
        }
        p.ok(&["policy", "set", p.backing().to_str().unwrap(), "--default", "steward"]);
        p
    }

    /// A project whose new files are readable by the steward and bob by
    /// default (once mounts have reloaded the registry).
    fn sharing_with_bob(name: &str) -> Project {
        let p = Project::new(name);
        p.ok(&["policy", "set", p.backing().to_str().unwrap(), "--default", "steward", "bob"]);
        std::thread::sleep(Duration::from_millis(1100)); // mounts reload the registry once a second
        p
    }

    fn backing(&self) -> PathBuf {
        self.s.path("backing")
    }

    /// `tresor ARGS -i steward.id --passfile pass`.
    fn cmd_as(&self, who: &str, args: &[&str]) -> Command {
        self.s.tresor_as(who, args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        run_ok(&mut self.cmd_as("steward", args))
    }

    fn fails_as(&self, who: &str, args: &[&str]) -> String {
        let out = self.cmd_as(who, args).output().unwrap();
        assert!(!out.status.success(), "{args:?} as {who} should fail");
        stderr(&out)
    }

    fn unseal(&self, who: &str) -> Identity {
        Identity::unseal(&fs::read(self.s.path(&format!("{who}.id"))).unwrap(), PASS.as_bytes()).unwrap()
    }

    fn volume(&self) -> Volume {
        Volume::open_self_signed(&fs::read(self.backing().join("tresor.volume")).unwrap()).unwrap()
    }

    /// The backing file of plaintext `name` in the volume root.
    fn backing_of(&self, name: &str) -> PathBuf {
        let volume = self.volume();
        let names = NameCipher::new(&volume.name_key(&self.unseal("steward")).unwrap());
        let iv = tresor_format::place::parse_diriv(&fs::read(self.backing().join("tresor.diriv")).unwrap()).unwrap();
        match names.encrypt_name(&iv, name.as_bytes()).unwrap() {
            tresor_format::EncryptedName::Short(e) => self.backing().join(e),
            tresor_format::EncryptedName::Long { entry, .. } => self.backing().join(entry),
        }
    }

    fn header_of(&self, backing: &Path) -> Header {
        let volume = self.volume();
        let mut bytes = vec![0u8; volume.params.header_len as usize];
        File::open(backing).unwrap().read_exact_at(&mut bytes, 0).unwrap();
        Header::open(&bytes, &volume).unwrap()
    }

    fn tmp_leftovers(&self) -> Vec<String> {
        fs::read_dir(self.backing())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("tresor.tmp."))
            .collect()
    }
}

/// Data with a recognisable pattern: `len` bytes from `seed`.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8).collect()
}

/// Whether `key`'s content cipher (for `file_id`) opens any stored block of
/// the backing file.
fn opens_any_block(volume: &Volume, backing: &Path, cipher: &ContentCipher) -> bool {
    let layout = Layout::new(volume.params.header_len, volume.params.block_size);
    let bytes = fs::read(backing).unwrap();
    let size = layout.plaintext_size(bytes.len() as u64).unwrap();
    let b = volume.params.block_size as u64;
    let mut out = vec![0u8; b as usize];
    (0..layout.block_count(size)).any(|k| {
        let len = (size - k * b).min(b) as usize + BLOCK_OVERHEAD;
        let at = layout.block_offset(k) as usize;
        cipher.open_block(k, &bytes[at..at + len], &mut out).is_ok()
    })
}

#[test]
fn a_steward_grants_and_revokes_and_the_old_key_opens_nothing_stored_afterwards() {
    let p = Project::new("scenario");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    let first = data(3 * 4096 + 100, 1);
    fs::write(a.path.join("results.csv"), &first).unwrap();
    // A plaintext path inside alice's live mount works as well as a backing path.
    let b = p.s.mount("backing", "bob", "bob", &[]);
    assert_eq!(File::open(b.path.join("results.csv")).unwrap_err().kind(), ErrorKind::PermissionDenied);
    p.ok(&["grant", a.path.join("results.csv").to_str().unwrap(), "--to", "bob"]);
    assert_eq!(fs::read(b.path.join("results.csv")).unwrap(), first);

    // What bob could keep: his unwrapped content key.
    let volume = p.volume();
    let backing = p.backing_of("results.csv");
    let before = p.header_of(&backing);
    let bobs_key = before.file_key(&p.unseal("bob")).unwrap();
    let old = ContentCipher::new(volume.params.suite, &bobs_key, &before.file_id, volume.params.block_size);
    assert!(opens_any_block(&volume, &backing, &old), "the key opens the file before the revoke");
    // bob keeps a handle open across the revoke.
    let mut held = File::open(b.path.join("results.csv")).unwrap();

    let out = p.ok(&["revoke", backing.to_str().unwrap(), "--from", "bob"]);
    assert!(stderr(&out).contains("1 changed"), "{}", stderr(&out));
    assert_eq!(File::open(b.path.join("results.csv")).unwrap_err().kind(), ErrorKind::PermissionDenied);
    let mut buf = Vec::new();
    assert_eq!(held.read_to_end(&mut buf).unwrap_err().kind(), ErrorKind::PermissionDenied, "the open handle too");
    // alice still reads and writes; nothing stored after the revoke opens
    // with bob's old key (under the old or the new file id).
    assert_eq!(fs::read(a.path.join("results.csv")).unwrap(), first);
    OpenOptions::new().append(true).open(a.path.join("results.csv")).unwrap().write_all(&data(5000, 2)).unwrap();
    let after = p.header_of(&backing);
    assert!(!after.is_recipient(&p.unseal("bob").id()));
    let old_new_id = ContentCipher::new(volume.params.suite, &bobs_key, &after.file_id, volume.params.block_size);
    assert!(!opens_any_block(&volume, &backing, &old));
    assert!(!opens_any_block(&volume, &backing, &old_new_id));
    // A rerun finds nothing to do.
    let out = p.ok(&["revoke", backing.to_str().unwrap(), "--from", "bob"]);
    assert!(stderr(&out).contains("0 changed, 1 already so"), "{}", stderr(&out));

    // Both changes are in the audit log, and the logs verify.
    let out = run_ok(&mut p.cmd_as("steward", &["audit", "show", "--json", "--volume", p.backing().to_str().unwrap()]));
    let records: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |op: &str| records.iter().filter(|r| r["op"] == op && r["path"] == "results.csv").count();
    assert_eq!((find("grant"), find("revoke")), (1, 1), "{records:#?}");
    let revoke = records.iter().find(|r| r["op"] == "revoke").unwrap();
    assert_eq!(revoke["rekeyed"], true);
    run_ok(p.s.tresor().args(["audit", "verify", "--volume"]).arg(p.backing()));
}

#[test]
fn acl_shows_readers_roles_and_signer_also_as_json() {
    let p = Project::new("acl");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    fs::write(a.path.join("notes.txt"), b"x").unwrap();
    let out = run_ok(
        p.s.tresor()
            .args(["acl", "--json"])
            .arg(a.path.join("notes.txt"))
            .arg("-i")
            .arg(p.s.path("alice.id"))
            .arg("--passfile")
            .arg(p.s.path("pass")),
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["path"], "notes.txt");
    let mut readers: Vec<_> = v["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["role"].as_str().unwrap().to_owned()))
        .collect();
    readers.sort();
    assert_eq!(readers, [("alice".into(), "member".into()), ("steward".into(), "steward".into())]);
    assert_eq!(v["signed_by"]["name"], "alice");
    assert_eq!(v["violation"], serde_json::Value::Null);
    // Without -r a directory is refused with a hint; with -r it is walked.
    let out = p.s.tresor().arg("acl").arg(p.backing()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("use -r"), "{}", stderr(&out));
    let out = run_ok(p.s.tresor().args(["acl", "-r"]).arg(p.backing()));
    assert!(String::from_utf8_lossy(&out.stdout).contains("signed by alice"));
}

#[test]
fn a_member_cannot_widen_readers_and_a_forged_header_is_a_violation() {
    let p = Project::new("member-widen");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    fs::write(a.path.join("draft"), b"alice's draft").unwrap();
    let path = a.path.join("draft");
    let err = p.fails_as("alice", &["grant", path.to_str().unwrap(), "--to", "bob"]);
    assert!(err.contains("only a steward"), "{err}");
    let err = p.fails_as("alice", &["policy", "set", p.backing().to_str().unwrap(), "--default", "bob"]);
    assert!(err.contains("steward"), "{err}");

    // alice forges a header naming bob with the format crate.
    let volume = p.volume();
    let alice = p.unseal("alice");
    let bob: PublicIdentity = *p.unseal("bob").public();
    let (header, key) = Header::create(&volume, &alice, &[*alice.public(), bob], 1, &mut OsRng).unwrap();
    let cipher = ContentCipher::new(volume.params.suite, &key, &header.file_id, volume.params.block_size);
    let mut bytes = header.to_bytes().unwrap();
    bytes.extend_from_slice(&cipher.seal_trailer(0, &mut OsRng));
    let backing = p.backing_of("draft");
    fs::write(&backing, &bytes).unwrap();
    let b = p.s.mount("backing", "bob", "bob", &[]);
    assert_eq!(File::open(b.path.join("draft")).unwrap_err().kind(), ErrorKind::PermissionDenied);
    let out = run_ok(p.s.tresor().args(["acl"]).arg(&backing));
    assert!(String::from_utf8_lossy(&out.stdout).contains("VIOLATION"), "{}", String::from_utf8_lossy(&out.stdout));
    // A steward's policy naming bob makes the same header valid (it is the rule, not a signature check).
    p.ok(&["policy", "set", p.backing().to_str().unwrap(), "--default", "steward", "bob"]);
    let out = run_ok(p.s.tresor().args(["acl"]).arg(&backing));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("VIOLATION"));
    // Narrowing the policy again re-signs the header as the steward, so it stays valid.
    let out = p.ok(&["policy", "set", p.backing().to_str().unwrap(), "--default", "steward"]);
    assert!(stderr(&out).contains("re-signed 1"), "{}", stderr(&out));
    assert_eq!(p.header_of(&backing).writer(), p.unseal("steward").id());
    // ...and the audit log says so, naming the previous writer.
    let out =
        run_ok(&mut p.cmd_as(
            "steward",
            &["audit", "show", "--json", "--op", "resign", "--volume", p.backing().to_str().unwrap()],
        ));
    let records: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["path"], "draft");
}

#[test]
fn storage_tampering_is_refused_with_a_clear_error() {
    let p = Project::new("tamper");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    fs::write(a.path.join("one"), data(10_000, 3)).unwrap();
    fs::write(a.path.join("two"), data(10_000, 4)).unwrap();
    let (one, two) = (p.backing_of("one"), p.backing_of("two"));
    let volume = p.volume();
    let h = volume.params.header_len as usize;
    let acl_err = |path: &Path| {
        let out = p.s.tresor().arg("acl").arg(path).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        stderr(&out)
    };
    let original = fs::read(&one).unwrap();

    // 1. A stanza added (copied from another header) without a signature.
    let mut bytes = original.clone();
    let hdr = Header::parse(&bytes[..h]).unwrap();
    let c = hdr.stanzas().len();
    let other = fs::read(&two).unwrap();
    let stanza = &other[108..108 + 96];
    let sig = bytes[108 + 96 * c..108 + 96 * c + 64].to_vec();
    bytes[108 + 96 * c..108 + 96 * c + 96].copy_from_slice(stanza);
    bytes[108 + 96 * (c + 1)..108 + 96 * (c + 1) + 64].copy_from_slice(&sig);
    bytes[10..12].copy_from_slice(&((c + 1) as u16).to_le_bytes());
    bytes[12..16].copy_from_slice(&((172 + 96 * (c + 1)) as u32).to_le_bytes());
    fs::write(&one, &bytes).unwrap();
    assert!(acl_err(&one).contains("file header"));
    assert_eq!(fs::read(a.path.join("one")).unwrap_err().raw_os_error(), Some(libc::EIO));

    // 2. The header of another file swapped in: the content no longer opens.
    let mut bytes = original.clone();
    bytes[..h].copy_from_slice(&other[..h]);
    fs::write(&one, &bytes).unwrap();
    assert_eq!(fs::read(a.path.join("one")).unwrap_err().raw_os_error(), Some(libc::EIO));
    let err = p.fails_as("steward", &["rekey", one.to_str().unwrap()]);
    assert!(err.contains("damaged"), "{err}");

    // 3. A file of mallory's own, signed with a key that is not a member's.
    let mallory = Identity::generate("mallory", &mut OsRng).unwrap();
    let (header, key) = Header::create(&volume, &mallory, &[*mallory.public()], 1, &mut OsRng).unwrap();
    let cipher = ContentCipher::new(volume.params.suite, &key, &header.file_id, volume.params.block_size);
    let mut bytes = header.to_bytes().unwrap();
    bytes.extend_from_slice(&cipher.seal_trailer(0, &mut OsRng));
    fs::write(&one, &bytes).unwrap();
    let err = acl_err(&one);
    assert!(err.contains("not a key this volume trusts"), "{err}");
    assert_eq!(fs::read(a.path.join("one")).unwrap_err().raw_os_error(), Some(libc::EIO));

    // 4. The registry (and the policies in it) edited: the signature fails.
    let vol_path = p.backing().join("tresor.volume");
    let good = fs::read(&vol_path).unwrap();
    let mut edited = good.clone();
    let at = edited.len() - 64 - 16 - 16; // the last default recipient id of the last policy
    edited[at] ^= 1;
    fs::write(&vol_path, &edited).unwrap();
    let err = p.fails_as("steward", &["policy", "show", p.backing().to_str().unwrap()]);
    assert!(err.contains("volume file"), "{err}");

    // 5. A policy rolled back (the registry of an earlier generation) or deleted
    //    (the same registry without it, which needs a steward's signature).
    fs::write(&vol_path, &good).unwrap();
    fs::write(&one, &original).unwrap();
    p.ok(&["policy", "set", p.backing().to_str().unwrap(), "--default", "steward", "bob"]);
    p.ok(&["policy", "show", p.backing().to_str().unwrap()]);
    fs::write(&vol_path, &good).unwrap();
    let err = p.fails_as("steward", &["policy", "show", p.backing().to_str().unwrap()]);
    assert!(err.contains("rolled back"), "{err}");
    // A policy file planted the old way is not read by anything.
    fs::write(p.backing().join("tresor.policy"), b"TRSRPOLY").unwrap();
}

/// Grants bob back (in place) if a revoke removed him.
fn ensure_bob(p: &Project, path: &Path) {
    if !p.header_of(path).is_recipient(&p.unseal("bob").id()) {
        p.ok(&["grant", path.to_str().unwrap(), "--to", "bob"]);
    }
}

#[test]
fn a_revoke_killed_at_random_moments_leaves_the_old_or_the_new_file() {
    let mib: usize = if std::env::var_os("TRESOR_BIG_TESTS").is_some() { 256 } else { 16 };
    let p = Project::new("kill");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    let content = data(mib << 20, 5);
    fs::write(a.path.join("big"), &content).unwrap();
    let path = p.backing_of("big");
    ensure_bob(&p, &path);
    // How long one uninterrupted revoke takes (identity unlock included).
    let start = Instant::now();
    p.ok(&["revoke", path.to_str().unwrap(), "--from", "bob"]);
    let full = start.elapsed();
    for round in 0..20 {
        ensure_bob(&p, &path);
        let before = p.header_of(&path);
        let mut child = p
            .cmd_as("steward", &["revoke", path.to_str().unwrap(), "--from", "bob"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let at = Duration::from_micros(OsRng.next_u64() % (full.as_micros() as u64 * 6 / 5).max(1));
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        // Exactly one key set: the header verifies and every block and the
        // trailer open under it (a full read through the mount).
        // The stanza goes first, in place; then the re-key: the header is
        // the old one, the old one without bob, or a new file's.
        let after = p.header_of(&path);
        let stanza_gone = after.file_id == before.file_id && !after.is_recipient(&p.unseal("bob").id());
        assert!(after == before || stanza_gone || after.file_id != before.file_id, "round {round}: a mixed header");
        assert!(
            fs::read(a.path.join("big")).unwrap() == content,
            "round {round} (killed after {at:?}): content changed"
        );
    }
    // Leftover temporaries of killed runs are removed by the next run once stale.
    for tmp in p.tmp_leftovers() {
        let t = p.backing().join(tmp);
        run_ok(Command::new("touch").args(["-d", "2 minutes ago"]).arg(&t));
    }
    ensure_bob(&p, &path);
    p.ok(&["revoke", "-r", p.backing().to_str().unwrap(), "--from", "bob"]);
    assert_eq!(p.tmp_leftovers(), Vec::<String>::new());
    assert!(!p.header_of(&path).is_recipient(&p.unseal("bob").id()));
    assert!(fs::read(a.path.join("big")).unwrap() == content);
}

/// Random writes to `[lo, hi)` of `file` for `secs`, applied to `model`.
fn write_randomly(file: PathBuf, mut model: Vec<u8>, lo: usize, hi: usize, secs: u64) -> (Vec<u8>, u32) {
    let f = OpenOptions::new().read(true).write(true).open(&file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u32;
    while Instant::now() < deadline {
        let len = 1 + (OsRng.next_u32() % 9_000) as usize;
        let off = lo + (OsRng.next_u64() % (hi - lo - len) as u64) as usize;
        let chunk = data(len, n as u8);
        f.write_all_at(&chunk, off as u64).unwrap();
        model[off..off + len].copy_from_slice(&chunk);
        n += 1;
    }
    (model, n)
}

#[test]
fn writers_on_two_nodes_lose_nothing_during_re_keys() {
    let p = Project::new("concurrent");
    // Two daemons on one backing directory: two nodes, as far as locks go.
    let node_a = p.s.mount("backing", "node-a", "alice", &[]);
    let node_b = p.s.mount("backing", "node-b", "alice", &[]);
    let len = 2 << 20;
    let model = data(len, 6);
    fs::write(node_a.path.join("live"), &model).unwrap();
    let path = p.backing_of("live");
    let (ma, mb) = (model.clone(), model.clone());
    let (fa, fb) = (node_a.path.join("live"), node_b.path.join("live"));
    let a = std::thread::spawn(move || write_randomly(fa, ma, 0, len / 2, 4));
    let b = std::thread::spawn(move || write_randomly(fb, mb, len / 2, len, 4));
    let mut rekeys = 0;
    while !(a.is_finished() && b.is_finished()) {
        p.ok(&["rekey", path.to_str().unwrap()]);
        rekeys += 1;
    }
    let ((ma, wa), (mb, wb)) = (a.join().unwrap(), b.join().unwrap());
    let mut want = ma[..len / 2].to_vec();
    want.extend_from_slice(&mb[len / 2..]);
    assert!(rekeys >= 2 && wa > 10 && wb > 10, "{rekeys} re-keys, {wa} + {wb} writes");
    for node in [&node_a, &node_b] {
        assert!(fs::read(node.path.join("live")).unwrap() == want, "after {rekeys} re-keys and {wa} + {wb} writes");
    }
}

#[test]
fn a_file_with_hard_links_is_re_keyed_once_and_every_name_follows() {
    let p = Project::new("hardlink");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    fs::write(a.path.join("one"), b"linked").unwrap();
    fs::create_dir(a.path.join("sub")).unwrap();
    fs::hard_link(a.path.join("one"), a.path.join("sub/two")).unwrap();
    let before = p.header_of(&p.backing_of("one"));
    p.ok(&["rekey", a.path.join("one").to_str().unwrap()]);
    let one = p.backing_of("one");
    // Format metadata (the audit log directory, IV files) is named tresor.*.
    let ours = |e: &PathBuf| !e.file_name().unwrap().to_string_lossy().starts_with("tresor.");
    let two = fs::read_dir(p.backing()).unwrap().map(|e| e.unwrap().path()).find(|e| e.is_dir() && ours(e)).unwrap();
    let two = fs::read_dir(two).unwrap().map(|e| e.unwrap().path()).find(|e| e.is_file() && ours(e));
    let two = two.expect("sub/two's backing file");
    assert_eq!(tresor_tamper::inode(&one), tresor_tamper::inode(&two), "the names are no longer one file");
    assert_ne!(p.header_of(&one).file_id, before.file_id, "not re-keyed");
    assert_eq!(fs::metadata(&one).unwrap().nlink(), 2);
    assert_eq!(fs::read(a.path.join("one")).unwrap(), b"linked");
    assert_eq!(fs::read(a.path.join("sub/two")).unwrap(), b"linked");
    assert_eq!(p.tmp_leftovers(), Vec::<String>::new());
}

/// The backing path of every name of the file with inode `ino` below `dir`.
fn names_of(dir: &Path, ino: u64) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(names_of(&path, ino));
        } else if meta.ino() == ino {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_member_who_hard_links_a_file_under_a_hidden_name_is_revoked_on_every_name() {
    let p = Project::sharing_with_bob("hidden-link");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    let first = data(2 * 4096 + 7, 3);
    fs::write(a.path.join("shared"), &first).unwrap();
    // bob, expecting to be revoked, keeps a second name that nobody asked about.
    let b = p.s.mount("backing", "bob", "bob", &[]);
    fs::create_dir(b.path.join("sub")).unwrap();
    fs::hard_link(b.path.join("shared"), b.path.join("sub/.keep")).unwrap();
    let backing = p.backing_of("shared");
    let before = p.header_of(&backing);
    let old_ino = tresor_tamper::inode(&backing);
    let names = names_of(&p.backing(), old_ino);
    assert_eq!(names.len(), 2, "{names:?}");
    let volume = p.volume();
    let bobs_key = before.file_key(&p.unseal("bob")).unwrap();

    let out = p.ok(&["revoke", "-r", p.backing().to_str().unwrap(), "--from", "bob"]);
    assert!(stderr(&out).contains("1 changed"), "{}", stderr(&out));

    // Every name: one new file, without bob's stanza, with a new file id
    // (so a new key and key commitment).
    let ino = tresor_tamper::inode(&backing);
    assert_ne!(ino, old_ino, "the file was not replaced");
    for name in &names {
        assert_eq!(tresor_tamper::inode(name), ino, "{} still holds the old file", name.display());
        let h = p.header_of(name);
        assert!(!h.is_recipient(&p.unseal("bob").id()), "{}: bob's stanza stayed", name.display());
        assert_ne!(h.file_id, before.file_id, "{}: not re-keyed", name.display());
    }
    // bob reads neither name; alice reads both, the same content.
    for name in ["shared", "sub/.keep"] {
        assert_eq!(File::open(b.path.join(name)).unwrap_err().kind(), ErrorKind::PermissionDenied, "{name}");
        assert_eq!(fs::read(a.path.join(name)).unwrap(), first, "{name}");
    }
    // What is written afterwards does not open with bob's old key.
    OpenOptions::new().append(true).open(a.path.join("sub/.keep")).unwrap().write_all(&data(5000, 4)).unwrap();
    assert_eq!(fs::read(a.path.join("shared")).unwrap().len(), first.len() + 5000);
    let after = p.header_of(&backing);
    for file_id in [before.file_id, after.file_id] {
        let old = ContentCipher::new(volume.params.suite, &bobs_key, &file_id, volume.params.block_size);
        for name in &names {
            assert!(!opens_any_block(&volume, name, &old), "{}: bob's old key opens it", name.display());
        }
    }
}

#[test]
fn a_revoke_that_cannot_re_key_still_removes_the_stanza_and_says_so() {
    let p = Project::sharing_with_bob("cannot-rekey");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    fs::write(a.path.join("shared"), b"for the team").unwrap();
    let backing = p.backing_of("shared");
    // A link outside the volume (same file system) cannot be re-pointed.
    fs::hard_link(&backing, p.s.path("outside-link")).unwrap();

    let out = p.cmd_as("steward", &["revoke", backing.to_str().unwrap(), "--from", "bob"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("NOT RE-KEYED") && stderr(&out).contains("hard links"), "{}", stderr(&out));
    assert!(!p.header_of(&backing).is_recipient(&p.unseal("bob").id()), "bob's stanza stayed");
    let b = p.s.mount("backing", "bob", "bob", &[]);
    assert_eq!(File::open(b.path.join("shared")).unwrap_err().kind(), ErrorKind::PermissionDenied);
    assert_eq!(fs::read(a.path.join("shared")).unwrap(), b"for the team");

    let out = run_ok(&mut p.cmd_as("steward", &["audit", "show", "--json", "--volume", p.backing().to_str().unwrap()]));
    let records: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let revoke = records.iter().find(|r| r["op"] == "revoke").expect("a revoke record");
    assert_eq!(revoke["rekeyed"], false, "{revoke:#}");
    assert!(revoke["intent"].as_str().unwrap_or("").contains("NOT re-keyed"), "{revoke:#}");
}

#[test]
fn a_file_kept_busy_is_still_revoked_and_named_as_not_re_keyed() {
    let p = Project::sharing_with_bob("busy");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    fs::write(a.path.join("shared"), b"for the team").unwrap();
    let backing = p.backing_of("shared");
    // Someone with the storage and bob's interest holds the mounts' own
    // lock on the whole file, and never lets go.
    let holder = OpenOptions::new().read(true).write(true).open(&backing).unwrap();
    tresor_mount::lock::set(holder.as_fd(), libc::F_WRLCK, tresor_mount::lock::LOCK_BASE, 0, false).unwrap();

    let mut revoke = p.cmd_as("steward", &["revoke", backing.to_str().unwrap(), "--from", "bob"]);
    let out = common::run_within(Duration::from_secs(60), revoke.env("TRESOR_LOCK_TIMEOUT", "2"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("NOT RE-KEYED") && stderr(&out).contains("busy"), "{}", stderr(&out));
    assert!(!p.header_of(&backing).is_recipient(&p.unseal("bob").id()), "bob's stanza stayed");

    drop(holder);
    let before = p.header_of(&backing);
    p.ok(&["rekey", backing.to_str().unwrap()]);
    assert_ne!(p.header_of(&backing).file_id, before.file_id);
    assert_eq!(fs::read(a.path.join("shared")).unwrap(), b"for the team");
}

#[test]
fn removing_a_member_with_rekey_revokes_every_file_and_re_signs_what_they_wrote() {
    let p = Project::sharing_with_bob("remove");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    fs::create_dir(a.path.join("sub")).unwrap();
    fs::write(a.path.join("sub/by-alice"), b"alice's").unwrap();
    drop(a);
    let b = p.s.mount("backing", "bob", "bob", &[]);
    fs::write(b.path.join("by-bob"), b"bob's").unwrap();
    drop(b);
    p.ok(&["member", "remove", p.backing().to_str().unwrap(), "bob", "--rekey"]);
    let steward = p.unseal("steward").id();
    // Verifies although bob, its writer, is gone: the steward re-signed it.
    assert_eq!(p.header_of(&p.backing_of("by-bob")).writer(), steward);
    let out = run_ok(p.s.tresor().args(["acl", "-r", "--json"]).arg(p.backing()));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(!text.contains("\"bob\""), "{text}");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    assert_eq!(fs::read(a.path.join("sub/by-alice")).unwrap(), b"alice's");
}

#[test]
fn a_member_removed_without_rekey_is_revoked_by_id_afterwards() {
    let p = Project::new("remove-later");
    let backing = p.backing();
    let backing = backing.to_str().unwrap();
    p.ok(&["policy", "set", backing, "--default", "steward", "bob"]);
    std::thread::sleep(Duration::from_millis(1100));
    let a = p.s.mount("backing", "alice", "alice", &[]);
    fs::write(a.path.join("shared"), b"for the team").unwrap();
    let bob = p.unseal("bob").id().to_string();
    let out = p.ok(&["member", "remove", backing, "bob"]);
    assert!(stderr(&out).contains("--rekey"), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(1100));
    // alice's header still names bob, who is no member: refused until a steward re-keys.
    assert_eq!(fs::read(a.path.join("shared")).unwrap_err().kind(), ErrorKind::PermissionDenied);
    p.ok(&["revoke", "-r", backing, "--from", &bob]);
    assert_eq!(fs::read(a.path.join("shared")).unwrap(), b"for the team");
}

#[test]
fn ctrl_c_stops_a_re_key_cleanly_and_a_rerun_continues() {
    let p = Project::new("sigint");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    let content = data(32 << 20, 7);
    fs::write(a.path.join("big"), &content).unwrap();
    let path = p.backing_of("big");
    let mut stopped = 0;
    for _ in 0..5 {
        let before = p.header_of(&path);
        let mut child = p.cmd_as("steward", &["rekey", path.to_str().unwrap()]).stderr(Stdio::piped()).spawn().unwrap();
        // Wait until the new file is being written, then press Ctrl-C.
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.tmp_leftovers().is_empty() && Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        if out.status.code() == Some(130) {
            stopped += 1;
            assert!(stderr(&out).contains("rerun the same command"), "{}", stderr(&out));
            assert_eq!(p.header_of(&path), before, "interrupted: the old file stays");
            assert_eq!(p.tmp_leftovers(), Vec::<String>::new(), "and its temporary is gone at once");
        } else {
            assert!(out.status.success(), "{}", stderr(&out));
        }
        assert!(fs::read(a.path.join("big")).unwrap() == content);
    }
    assert!(stopped > 0, "Ctrl-C never landed during a re-key");
    p.ok(&["rekey", path.to_str().unwrap()]);
    assert!(fs::read(a.path.join("big")).unwrap() == content);
}

#[test]
fn policy_show_reports_the_own_and_the_inherited_policy_and_unset_removes_it() {
    let p = Project::new("policy-show");
    let a = p.s.mount("backing", "alice", "alice", &[]);
    fs::create_dir_all(a.path.join("outputs/tables")).unwrap();
    let tables = a.path.join("outputs/tables");
    let show = |dir: &Path| -> serde_json::Value {
        let out = run_ok(&mut p.cmd_as("alice", &["policy", "show", "--json", dir.to_str().unwrap()]));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = show(&tables);
    assert_eq!(v["own"], serde_json::Value::Null);
    assert_eq!(v["in_force"][0]["name"], "steward");
    assert_eq!(v["in_force_from"], "/");
    p.ok(&["policy", "set", a.path.join("outputs").to_str().unwrap(), "--default", "steward", "bob"]);
    let v = show(&tables);
    let names: Vec<_> = v["in_force"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["steward", "bob"]);
    assert_eq!(v["in_force_from"], "outputs");
    p.ok(&["policy", "set", a.path.join("outputs").to_str().unwrap(), "--unset"]);
    assert_eq!(show(&tables)["in_force_from"], "/");
}
