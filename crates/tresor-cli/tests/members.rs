//! The member registry from the command line: names are unique, roles
//! change, and every change is signed and audited.

mod common;

use std::process::Output;

use common::{run_ok, Scratch};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn as_steward(s: &Scratch, args: &[&str]) -> Output {
    s.tresor_as("steward", args).output().unwrap()
}

#[test]
fn a_second_member_of_the_same_name_is_refused() {
    let s = Scratch::new("members-names");
    s.identity("steward");
    s.init("backing", "steward", &[]);
    let backing = s.path("backing");
    let backing = backing.to_str().unwrap();
    let first = s.identity("alice");
    let second = s.identity("alice2");
    assert!(as_steward(&s, &["member", "add", backing, &first, "--name", "alice"]).status.success());
    let out = as_steward(&s, &["member", "add", backing, &second, "--name", "alice"]);
    assert!(!out.status.success(), "two members named alice");
    assert!(stderr(&out).contains("already named"), "{}", stderr(&out));
}

#[test]
fn a_steward_changes_a_members_role_and_the_change_is_audited() {
    let s = Scratch::new("members-role");
    s.identity("steward");
    s.init("backing", "steward", &[]);
    let backing = s.path("backing");
    let backing = backing.to_str().unwrap();
    let bob = s.identity("bob");
    assert!(as_steward(&s, &["member", "add", backing, &bob, "--name", "bob"]).status.success());
    let out = as_steward(&s, &["member", "set-role", backing, "bob", "auditor"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = String::from_utf8_lossy(&run_ok(s.tresor().args(["member", "list", backing])).stdout).into_owned();
    assert!(list.lines().any(|l| l.starts_with("bob") && l.contains("auditor")), "{list}");
    // The last steward cannot demote themselves: a registry keeps one.
    let out = as_steward(&s, &["member", "set-role", backing, "steward", "member"]);
    assert!(!out.status.success(), "the only steward stepped down");
    let out = as_steward(&s, &["audit", "show", "--volume", backing, "--op", "set-role", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("set-role") && shown.contains("auditor"), "{shown}");
}
