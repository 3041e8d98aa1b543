//! The audit policy in the signed registry: what the stewards require of
//! every mount's log, no member can turn off with a mount option.

mod common;

use std::process::Output;

use common::{run_ok, Scratch};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn volume(name: &str, init: &[&str]) -> Scratch {
    let s = Scratch::new(name);
    s.identity("steward");
    s.init("backing", "steward", init);
    let public = s.identity("alice");
    let backing = s.path("backing");
    run_ok(&mut s.tresor_as("steward", &["member", "add", backing.to_str().unwrap(), &public, "--name", "alice"]));
    s
}

fn mount_as_alice(s: &Scratch, opts: &[&str]) -> Output {
    let mut cmd = s.mount_cmd("backing", "mnt", "alice");
    for o in opts {
        cmd.args(["-o", o]);
    }
    cmd.output().unwrap()
}

#[test]
fn a_member_cannot_mount_without_the_log_a_volume_requires() {
    let s = volume("audit-required", &[]);
    for opts in [&["audit=off"][..], &["audit_dir=/tmp"], &["audit_on_error=continue"]] {
        let out = mount_as_alice(&s, opts);
        assert!(!out.status.success(), "{opts:?} was accepted by a volume that requires its log");
        assert!(stderr(&out).contains("audit policy"), "{opts:?}: {}", stderr(&out));
        assert!(!common::is_mountpoint(&s.path("mnt")));
    }
    // The default options keep the log: that mounts.
    let out = mount_as_alice(&s, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    common::unmount(&s.path("mnt"));
}

#[test]
fn a_volume_whose_log_is_optional_warns_and_records_weaker_options() {
    let s = volume("audit-optional", &["--audit-optional"]);
    let out = mount_as_alice(&s, &["audit=off"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("audit=off"), "the weaker option is warned of: {}", stderr(&out));
    common::unmount(&s.path("mnt"));
}

#[test]
fn stewards_set_the_audit_policy_and_its_bounds_hold() {
    let s = volume("audit-bounds", &["--audit-optional"]);
    let steward = |args: &[&str]| s.tresor_as("steward", args).output().unwrap();
    let backing = s.path("backing");
    let backing = backing.to_str().unwrap();
    let out = steward(&["member", "audit-policy", backing, "--required", "--max-sync-ms", "200"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("required"));
    let out = mount_as_alice(&s, &["audit_sync_ms=5000"]);
    assert!(!out.status.success() && stderr(&out).contains("200"), "{}", stderr(&out));
    let out = mount_as_alice(&s, &["audit=off"]);
    assert!(!out.status.success(), "audit=off after the policy became required");
    // A member cannot change it.
    let out = s.tresor_as("alice", &["member", "audit-policy", backing, "--optional"]).output().unwrap();
    assert!(!out.status.success());
    let out = steward(&["member", "audit-policy", backing, "--anchors-required"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = mount_as_alice(&s, &["audit_sync_ms=100", "audit_anchor=none"]);
    assert!(!out.status.success() && stderr(&out).contains("anchor"), "{}", stderr(&out));
}

#[test]
fn a_removed_members_logs_still_verify_and_they_stay_searchable() {
    let s = volume("audit-former", &[]);
    let out = mount_as_alice(&s, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(s.path("mnt/results.csv"), b"alice's").unwrap();
    common::unmount(&s.path("mnt"));
    let steward = |args: &[&str]| s.tresor_as("steward", args).output().unwrap();
    let backing = s.path("backing");
    let backing = backing.to_str().unwrap();
    let out = steward(&["member", "remove", backing, "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Her mount's log is still genuine: verified against her kept keys.
    let out = s.tresor().args(["audit", "verify", "--volume", backing]).output().unwrap();
    assert!(
        out.status.success(),
        "a removed member's log no longer verifies: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    // And she is still found by name, marked as former.
    let out = steward(&["audit", "show", "--volume", backing, "--member", "alice", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("results.csv") && text.contains("alice (former)"), "{text}");
    let out = run_ok(s.tresor().args(["member", "list", backing]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("former member"));
}
