//! Where a passphrase comes from (as gocryptfs offers them), and where a
//! mount keeps its pins when there is no HOME.

mod common;

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    process::{Command, Stdio},
};

use common::{is_mountpoint, run_ok, Scratch, PASS};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `tresor id passwd` of alice's identity, the current passphrase from
/// `source`, the new one (the same) from the private file: any command
/// that unlocks an identity reads its passphrase the same way.
fn unlock(s: &Scratch, source: &[&str]) -> Command {
    let mut cmd = s.tresor();
    cmd.args(["id", "passwd", "-i"]).arg(s.path("alice.id")).args(source).arg("--new-passfile").arg(s.path("pass"));
    cmd
}

#[test]
fn a_passphrase_file_others_can_read_works_with_a_warning() {
    let s = Scratch::new("passfile-mode");
    s.identity("alice");
    let private = run_ok(unlock(&s, &["--passfile", s.path("pass").to_str().unwrap()]).stdin(Stdio::null()));
    assert!(!stderr(&private).contains("warning"), "{}", stderr(&private));

    fs::set_permissions(s.path("pass"), fs::Permissions::from_mode(0o640)).unwrap();
    let group = run_ok(unlock(&s, &["--passfile", s.path("pass").to_str().unwrap()]).stdin(Stdio::null()));
    assert!(stderr(&group).contains("warning") && stderr(&group).contains("its group"), "{}", stderr(&group));

    fs::set_permissions(s.path("pass"), fs::Permissions::from_mode(0o644)).unwrap();
    let world = run_ok(unlock(&s, &["--passfile", s.path("pass").to_str().unwrap()]).stdin(Stdio::null()));
    assert!(
        stderr(&world).contains("readable by everyone") && stderr(&world).contains("chmod 600"),
        "{}",
        stderr(&world)
    );
}

#[test]
fn a_passphrase_comes_from_standard_input_with_passfile_dash() {
    let s = Scratch::new("pass-stdin");
    s.identity("alice");
    let mut child = unlock(&s, &["--passfile", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASS}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let mut child = unlock(&s, &["--passfile", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"not it\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("wrong passphrase"), "{}", stderr(&out));
}

#[test]
fn an_external_program_supplies_the_passphrase_and_its_failure_is_an_error() {
    let s = Scratch::new("extpass");
    s.identity("alice");
    let cat = format!("cat {}", s.path("pass").display());
    run_ok(unlock(&s, &["--extpass", &cat]).stdin(Stdio::null()));

    let out = unlock(&s, &["--extpass", "echo locked >&2; exit 3"]).stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("locked"), "the program's own message reaches the user: {err}");
    assert!(err.contains("--extpass") && err.contains("exit status: 3"), "{err}");
    assert!(!err.contains("wrong passphrase"), "{err}");
}

#[test]
fn a_mount_takes_extpass_from_its_options_as_fstab_gives_it() {
    let s = Scratch::new("extpass-mount");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    fs::create_dir_all(s.path("mnt")).unwrap();
    let out = s
        .tresor()
        .arg("mount")
        .arg(s.path("backing"))
        .arg(s.path("mnt"))
        .arg("-o")
        .arg(format!("identity={},extpass=cat {}", s.path("alice.id").display(), s.path("pass").display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let _m = common::Mounted { path: s.path("mnt") };
    assert!(is_mountpoint(&s.path("mnt")));
}

#[test]
fn without_home_a_mount_pins_in_var_lib_tresor_never_in_the_current_directory() {
    let s = Scratch::new("no-home");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    fs::create_dir_all(s.path("mnt")).unwrap();
    fs::create_dir_all(s.path("cwd")).unwrap();
    let before: Vec<_> =
        fs::read_dir("/var/lib/tresor/pinned").map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    // As mount(8) or a unit at boot runs the helper: no HOME, no TRESOR_DIR.
    let out = s
        .mount_cmd("backing", "mnt", "alice")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir(s.path("cwd"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let _m = common::Mounted { path: s.path("mnt") };
    assert_eq!(fs::read_dir(s.path("cwd")).unwrap().count(), 0, "nothing written to the current directory");
    let after: Vec<_> = fs::read_dir("/var/lib/tresor/pinned").unwrap().flatten().map(|e| e.path()).collect();
    let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(!new.is_empty(), "the first-use pin is in /var/lib/tresor/pinned");
    assert!(stderr(&out).contains("pinned now on first use"), "{}", stderr(&out));
    for p in new {
        let _ = fs::remove_file(p);
    }
}

/// Runs `tresor id passwd` on a terminal (script(1) gives it a pty) and
/// answers each passphrase prompt with the next of `answers`; returns
/// (exit success, what the terminal showed).
fn on_a_terminal(s: &Scratch, answers: &[&str]) -> (bool, String) {
    use std::io::Read;
    let passwd = unlock(s, &[]);
    let line: Vec<String> = std::iter::once(passwd.get_program())
        .chain(passwd.get_args())
        .map(|a| format!("'{}'", a.to_str().unwrap()))
        .collect();
    let mut child = Command::new("script")
        .args(["-qfec", &line.join(" "), "/dev/null"])
        .env("TRESOR_DIR", s.path("config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut shown = String::new();
    let mut answered = 0;
    let mut buf = [0u8; 256];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        shown.push_str(&String::from_utf8_lossy(&buf[..n]));
        // Answer each prompt once it is shown (input typed earlier would be flushed).
        while shown.matches("Passphrase for").count() > answered && answered < answers.len() {
            stdin.write_all(format!("{}\n", answers[answered]).as_bytes()).unwrap();
            answered += 1;
        }
    }
    drop(stdin);
    (child.wait().unwrap().success(), shown)
}

#[test]
fn the_terminal_prompt_asks_again_after_a_wrong_passphrase_three_times_in_all() {
    let s = Scratch::new("prompt");
    s.identity("alice");
    let (ok, shown) = on_a_terminal(&s, &["wrong", "also wrong", PASS]);
    assert!(ok, "{shown}");
    assert_eq!(shown.matches("try again").count(), 2, "{shown}");

    let (ok, shown) = on_a_terminal(&s, &["wrong", "wrong", "wrong"]);
    assert!(!ok, "{shown}");
    assert_eq!(shown.matches("Passphrase for").count(), 3, "{shown}");
    assert!(shown.contains("wrong passphrase for this identity file"), "{shown}");
}
