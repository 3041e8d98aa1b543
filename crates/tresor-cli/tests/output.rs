//! What commands print, as scripts and people rely on it: JSON rows that
//! parse for any name, names escaped on a terminal, no panic when the
//! reader goes away, and PATH and identity taken the same way everywhere.

mod common;

use std::{
    fs,
    process::{Output, Stdio},
};

use common::{run_ok, Scratch};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout(out).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"))).collect()
}

/// A volume with steward `steward` and a member whose name hides a
/// zero-width space.
fn volume(name: &str) -> Scratch {
    let s = Scratch::new(name);
    s.identity("steward");
    s.init("backing", "steward", &[]);
    let bob = s.identity("bob");
    let b = s.path("backing");
    run_ok(&mut s.tresor_as("steward", &["member", "add", b.to_str().unwrap(), &bob, "--name", "bo\u{200b}b"]));
    s
}

#[test]
fn names_are_exact_in_json_and_escaped_as_text() {
    let s = volume("output-names");
    let b = s.path("backing");
    let b = b.to_str().unwrap();

    // A member name with a control character is refused outright.
    let eve = s.identity("eve");
    let out = s.tresor_as("steward", &["member", "add", b, &eve, "--name", "eve\u{1b}[2J"]).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("control character"), "{}", stderr(&out));

    // member list: the JSON carries the name exactly; the text escapes it.
    let rows = json_lines(&run_ok(s.tresor().args(["member", "list", "--json", b])));
    assert!(rows.iter().any(|r| r["name"] == "bo\u{200b}b"), "{rows:?}");
    let text = stdout(&run_ok(s.tresor().args(["member", "list", b])));
    assert!(text.contains("bo\\u{200b}b") && !text.contains('\u{200b}'), "{text:?}");

    // File names may hold anything but `/` and NUL: escape sequences,
    // bidi overrides, newlines.
    let names = ["clear\u{1b}[2Jscreen", "report\u{202e}vsc.exe", "two\nlines"];
    {
        let m = s.mount("backing", "mnt", "steward", &[]);
        for n in names {
            fs::write(m.path.join(n), b"x").unwrap();
        }
    }
    let json = json_lines(&run_ok(&mut s.tresor_as("steward", &["acl", "-r", "--json", b])));
    let mut paths: Vec<&str> = json.iter().map(|r| r["path"].as_str().unwrap()).collect();
    paths.sort();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(paths, want, "JSON paths are the names, exactly");
    assert!(json.iter().all(|r| r["signed_at"].as_str().unwrap().ends_with('Z')), "RFC 3339 times: {json:?}");
    let text = stdout(&run_ok(&mut s.tresor_as("steward", &["acl", "-r", b])));
    for raw in ['\u{1b}', '\u{202e}'] {
        assert!(!text.contains(raw), "{raw:?} reached the terminal: {text:?}");
    }
    assert!(text.contains("clear\\u{1b}[2Jscreen") && text.contains("two\\nlines"), "{text}");

    // policy show: the member's name in JSON as it is.
    run_ok(&mut s.tresor_as("steward", &["policy", "set", b, "--default", "steward", "bo\u{200b}b"]));
    let shown = json_lines(&run_ok(&mut s.tresor_as("steward", &["policy", "show", "--json", b])));
    assert_eq!(shown[0]["own"][1]["name"], "bo\u{200b}b");
    assert!(shown[0]["generation"].is_u64());
}

#[test]
fn listing_commands_end_quietly_when_their_reader_goes_away() {
    let s = volume("output-pipe");
    let b = s.path("backing");
    let b = b.to_str().unwrap();
    {
        let m = s.mount("backing", "mnt", "steward", &[]);
        fs::write(m.path.join("f"), b"x").unwrap();
    }
    for args in [
        &["acl", "-r", b][..],
        &["acl", "-r", "--json", b],
        &["member", "list", b],
        &["policy", "show", b],
        &["info", b],
    ] {
        // The reader is gone before the command prints its first line.
        let mut child = s.tresor_as("steward", args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(!stderr(&out).contains("panicked"), "{args:?}: {}", stderr(&out));
        assert_ne!(out.status.code(), Some(101), "{args:?}: a panic's exit code");
    }
    // A command that changes files finishes (and closes its audit log)
    // when the reader of its messages is gone.
    let mut child =
        s.tresor_as("steward", &["grant", "-r", b, "--to", "bo\u{200b}b"]).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stderr.take());
    assert!(child.wait().unwrap().success(), "grant -r with its stderr closed");
    let rows = json_lines(&run_ok(&mut s.tresor_as("steward", &["acl", "-r", "--json", b])));
    assert_eq!(rows[0]["readers"].as_array().unwrap().len(), 2, "granted: {rows:?}");
}

#[test]
fn policy_set_says_what_it_sets_and_paths_and_identities_are_taken_as_everywhere() {
    let s = volume("output-policy");
    let backing = s.path("backing");
    let b = backing.to_str().unwrap();
    // Neither --default nor --none: a usage error, not "nobody" by accident.
    let out = s.tresor_as("steward", &["policy", "set", b]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    run_ok(&mut s.tresor_as("steward", &["policy", "set", b, "--none"]));
    let shown = json_lines(&run_ok(&mut s.tresor_as("steward", &["policy", "show", "--json", b])));
    assert_eq!(shown[0]["own"], serde_json::json!([]), "an explicit 'nobody by default'");

    // A plaintext path below the backing directory, where a backing path is taken.
    {
        let m = s.mount("backing", "mnt", "steward", &[]);
        fs::create_dir(m.path.join("outputs")).unwrap();
        fs::write(m.path.join("outputs/table.csv"), b"x").unwrap();
    }
    let plain = backing.join("outputs/table.csv");
    let rows = json_lines(&run_ok(&mut s.tresor_as("steward", &["acl", "--json", plain.to_str().unwrap()])));
    assert_eq!(rows[0]["path"], "outputs/table.csv");
    let out = run_ok(&mut s.tresor_as("steward", &["grant", plain.to_str().unwrap(), "--to", "bo\u{200b}b"]));
    assert!(stderr(&out).contains("1 changed"), "{}", stderr(&out));

    // acl and policy show take the default identity, as every other command.
    fs::create_dir_all(s.path("config")).unwrap();
    fs::copy(s.path("steward.id"), s.path("config/identity")).unwrap();
    let pass = s.path("pass");
    let pass = pass.to_str().unwrap();
    let rows = json_lines(&run_ok(s.tresor().args(["acl", "--json", plain.to_str().unwrap(), "--passfile", pass])));
    assert_eq!(rows[0]["readers"].as_array().unwrap().len(), 2);
    let dir = backing.join("outputs");
    let shown =
        json_lines(&run_ok(s.tresor().args(["policy", "show", "--json", dir.to_str().unwrap(), "--passfile", pass])));
    assert_eq!(shown[0]["dir"], "outputs");
}

#[test]
fn a_recursive_run_on_a_terminal_shows_total_percentage_rate_and_eta() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script(1) (util-linux) is not installed to give the command a terminal");
        return;
    }
    let s = volume("output-progress");
    {
        let m = s.mount("backing", "mnt", "steward", &[]);
        for i in 0..40 {
            fs::write(m.path.join(format!("f{i}")), vec![7u8; 20_000]).unwrap();
        }
    }
    let tresor = env!("CARGO_BIN_EXE_tresor");
    let run = format!(
        "{tresor} rekey -r {} -i {} --passfile {}",
        s.path("backing").display(),
        s.path("steward.id").display(),
        s.path("pass").display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &run, "/dev/null"])
        .env("TRESOR_DIR", s.path("config"))
        .env("COLUMNS", "160")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("/40 files ("), "the total and the percentage: {shown}");
    assert!(shown.contains("files/s") && shown.contains("ETA"), "the rate and the time left: {shown}");
}
