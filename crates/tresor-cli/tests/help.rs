//! `tresor --help`, `tresor <command> --help` and the man pages made from
//! them explain every option.

fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    let path = format!("{path} {}", cmd.get_name());
    if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
        out.push(format!("{path}: the command has no description"));
    }
    for arg in cmd.get_arguments() {
        let builtin = matches!(arg.get_id().as_str(), "help" | "version");
        if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
            out.push(format!("{path}: {} has no help text", arg.get_id()));
        }
    }
    for sub in cmd.get_subcommands() {
        undocumented(sub, &path, out);
    }
}

#[test]
fn every_command_and_option_has_help_text() {
    let mut missing = Vec::new();
    let mut cmd = tresor::command();
    cmd.build();
    undocumented(&cmd, "", &mut missing);
    undocumented(&tresor::helper_command(), "", &mut missing);
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_environment_variables_are_documented() {
    let help = tresor::command().render_long_help().to_string();
    for var in ["TRESOR_DIR", "TRESOR_LOG", "TRESOR_IDENTITY", "/etc/tresor", "/var/lib/tresor"] {
        assert!(help.contains(var), "{var} missing from tresor --help");
    }
    let mut cmd = tresor::command();
    let mount = cmd.find_subcommand_mut("mount").unwrap().render_long_help().to_string();
    for opt in ["remount", "nodiratime", "nonempty", "extpass=CMD", "x-*"] {
        assert!(mount.contains(opt), "{opt} missing from tresor mount --help");
    }
}
