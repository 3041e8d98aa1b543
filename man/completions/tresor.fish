# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_tresor_global_optspecs
    string join \n h/help V/version
end

function __fish_tresor_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_tresor_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_tresor_using_subcommand
    set -l cmd (__fish_tresor_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c tresor -n "__fish_tresor_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tresor -n "__fish_tresor_needs_command" -s V -l version -d 'Print version'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "id" -d 'Create, show or re-seal your identity (your keys, sealed with a passphrase)'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "init" -d 'Create a new volume in an empty backing directory, with you as its steward'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "member" -d 'Add, remove or list the volume\'s members (the signed registry)'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "mount" -d 'Mount a volume: the plaintext view of BACKING appears at MOUNTPOINT'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "grant" -d 'Give a member read access to files (a steward who can read them)'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "revoke" -d 'Take a member\'s read access to files away, and re-key them'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "rekey" -d 'Give files a new content key (same readers), e.g. after a key leak'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "acl" -d 'Show who can read each file: readers with roles, who signed the header and when, and any header that breaks the access rules'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "policy" -d 'Default recipients of new files below a directory'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "audit" -d 'Verify, show and question audit logs'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "migrate" -d 'Convert a volume an older Tresor made to the current format, in place (a steward, with every mount of the volume stopped)'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "fsck" -d 'Check a volume without a mount: registry, directory IVs, names, headers, blocks, temporaries, links, planted files, audit logs'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "info" -d 'Show a volume\'s parameters, registry, members, policies, audit settings and this client\'s pin'
complete -c tresor -n "__fish_tresor_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tresor -n "__fish_tresor_using_subcommand id; and not __fish_seen_subcommand_from new show passwd help" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand id; and not __fish_seen_subcommand_from new show passwd help" -f -a "new" -d 'Create a new identity, sealed with a passphrase (Argon2id)'
complete -c tresor -n "__fish_tresor_using_subcommand id; and not __fish_seen_subcommand_from new show passwd help" -f -a "show" -d 'Print the public identity string and member id (no passphrase needed)'
complete -c tresor -n "__fish_tresor_using_subcommand id; and not __fish_seen_subcommand_from new show passwd help" -f -a "passwd" -d 'Re-seal the identity file under a new passphrase'
complete -c tresor -n "__fish_tresor_using_subcommand id; and not __fish_seen_subcommand_from new show passwd help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from new" -l name -d 'Your name as stewards will see it in the member registry [default: $USER]' -r
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from new" -l out -d 'Where to write the identity file [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from new" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from new" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from new" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from new" -l force -d 'Replace an existing identity file'
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from new" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from show" -s i -l identity -d 'The identity file [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from passwd" -s i -l identity -d 'The identity file [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from passwd" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from passwd" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from passwd" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from passwd" -l new-passfile -d 'Read the new passphrase from the first line of FILE' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from help" -f -a "new" -d 'Create a new identity, sealed with a passphrase (Argon2id)'
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the public identity string and member id (no passphrase needed)'
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Re-seal the identity file under a new passphrase'
complete -c tresor -n "__fish_tresor_using_subcommand id; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tresor -n "__fish_tresor_using_subcommand init" -l steward -d 'The steward\'s identity file: the volume\'s first member, who signs the registry' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand init" -l cipher -d 'Content cipher: aes-256-gcm-siv (default; nonce-misuse resistant), aes-256-gcm, or chacha20-poly1305 (for hosts without AES instructions)' -r
complete -c tresor -n "__fish_tresor_using_subcommand init" -l block-size -d 'Plaintext bytes per block (power of two, 4096 to 1048576)' -r
complete -c tresor -n "__fish_tresor_using_subcommand init" -l header-size -d 'Bytes reserved for each file header: 4096 holds 40 recipients per file' -r
complete -c tresor -n "__fish_tresor_using_subcommand init" -l registry-valid-days -d 'Days each signature keeps the member registry valid. Every change renews it; `tresor member renew` renews it without a change. A node that has never seen the volume can be shown a rolled-back registry for at most this long (THREAT-MODEL.md)' -r
complete -c tresor -n "__fish_tresor_using_subcommand init" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand init" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand init" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand init" -l audit-optional -d 'Let members mount without an audit log (`-o audit=off`) or with it elsewhere. By default the volume requires every mount and command to keep its log in the volume; `tresor member audit-policy` changes it'
complete -c tresor -n "__fish_tresor_using_subcommand init" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand member; and not __fish_seen_subcommand_from add set-role remove renew audit-policy list help" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand member; and not __fish_seen_subcommand_from add set-role remove renew audit-policy list help" -f -a "add" -d 'Add a member by their public identity (`tresor id show` prints it)'
complete -c tresor -n "__fish_tresor_using_subcommand member; and not __fish_seen_subcommand_from add set-role remove renew audit-policy list help" -f -a "set-role" -d 'Change a member\'s role. A member made an auditor is dropped from every directory policy (auditors hold no content keys); the registry keeps at least one steward'
complete -c tresor -n "__fish_tresor_using_subcommand member; and not __fish_seen_subcommand_from add set-role remove renew audit-policy list help" -f -a "remove" -d 'Remove a member from the registry. Without --rekey their keys stay in file headers until revoked (`tresor revoke -r`)'
complete -c tresor -n "__fish_tresor_using_subcommand member; and not __fish_seen_subcommand_from add set-role remove renew audit-policy list help" -f -a "renew" -d 'Sign the registry again without changing it, renewing its validity (every change renews it too). Mounts and commands refuse a registry past its expiry: that bounds how long a rolled-back copy can be passed off to a node that has not seen a newer one'
complete -c tresor -n "__fish_tresor_using_subcommand member; and not __fish_seen_subcommand_from add set-role remove renew audit-policy list help" -f -a "audit-policy" -d 'Set what every mount\'s and command\'s audit log must be (signed in the registry; mounts refuse weaker options). Without options, shows the policy in force'
complete -c tresor -n "__fish_tresor_using_subcommand member; and not __fish_seen_subcommand_from add set-role remove renew audit-policy list help" -f -a "list" -d 'List members: name, role, member id'
complete -c tresor -n "__fish_tresor_using_subcommand member; and not __fish_seen_subcommand_from add set-role remove renew audit-policy list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from add" -l name -d 'Their name as the registry shows it (unique in the volume)' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from add" -l role -d 'Their role in the volume' -r -f -a "steward\t'Manages members, grants and revokes access, sets directory policies'
member\t'Reads the files granted to them; creates files'
auditor\t'Verifies audit logs; holds no content keys'"
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from add" -s i -l identity -d 'Your identity file (a steward\'s) [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from add" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from add" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from add" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from set-role" -s i -l identity -d 'Your identity file (a steward\'s) [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from set-role" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from set-role" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from set-role" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from set-role" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from remove" -s i -l identity -d 'Your identity file (a steward\'s) [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from remove" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from remove" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from remove" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from remove" -l rekey -d 'First walk the whole volume: revoke the member and re-key every file they could read, and re-sign every header they wrote (safe to interrupt and rerun; the member is removed from the registry last)'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from renew" -l valid-days -d 'Days the registry stays valid from now, for this and later signatures [default: as before]' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from renew" -s i -l identity -d 'Your identity file (a steward\'s) [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from renew" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from renew" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from renew" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from renew" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from audit-policy" -l anchors-required -d 'Every log must export its checkpoints (audit_anchor=syslog or audit_anchor_cmd=); `--anchors-required=false` lifts it' -r -f -a "true\t''
false\t''"
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from audit-policy" -l max-sync-ms -d 'The longest audit_sync_ms a mount may choose (0: no bound)' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from audit-policy" -l dir -d 'Logs go to this absolute directory, which every node mounts (`--dir ""`: the volume\'s own tresor.audit)' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from audit-policy" -s i -l identity -d 'Your identity file (a steward\'s) [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from audit-policy" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from audit-policy" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from audit-policy" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from audit-policy" -l required -d 'Logging may not be turned off or moved (the default for new volumes)'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from audit-policy" -l optional -d 'Members may mount with `-o audit=off` or another audit_dir (warned of and recorded)'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from audit-policy" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from list" -l json -d 'One JSON object per line'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a member by their public identity (`tresor id show` prints it)'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from help" -f -a "set-role" -d 'Change a member\'s role. A member made an auditor is dropped from every directory policy (auditors hold no content keys); the registry keeps at least one steward'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove a member from the registry. Without --rekey their keys stay in file headers until revoked (`tresor revoke -r`)'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from help" -f -a "renew" -d 'Sign the registry again without changing it, renewing its validity (every change renews it too). Mounts and commands refuse a registry past its expiry: that bounds how long a rolled-back copy can be passed off to a node that has not seen a newer one'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from help" -f -a "audit-policy" -d 'Set what every mount\'s and command\'s audit log must be (signed in the registry; mounts refuse weaker options). Without options, shows the policy in force'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from help" -f -a "list" -d 'List members: name, role, member id'
complete -c tresor -n "__fish_tresor_using_subcommand member; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tresor -n "__fish_tresor_using_subcommand mount" -s o -d 'Mount options, comma-separated (see below, or `man tresor-mount`)' -r
complete -c tresor -n "__fish_tresor_using_subcommand mount" -s i -l identity -d 'Your identity file [default: $TRESOR_DIR/identity, ~/.config/tresor/identity, or /etc/tresor/identity without HOME]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand mount" -l steward -d 'The steward public key (tresor1…) to trust for this volume. Without it, the key pinned at an earlier mount is used, or on first use the volume\'s own signer is pinned and its fingerprint printed' -r
complete -c tresor -n "__fish_tresor_using_subcommand mount" -l audit-dir -d 'Where the audit log goes (a directory, e.g. on another system) [default: BACKING/tresor.audit]. Same as -o audit_dir=DIR; other audit options (audit=off, audit_sync=always, audit_anchor_cmd=...) are -o options' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand mount" -l log-file -d 'Where the daemon logs once detached [default: syslog, each message at its level]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand mount" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand mount" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand mount" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand mount" -s f -l foreground -d 'Stay in the foreground and log to stderr (default: detach once mounted). For systemd units (Type=notify) and jobs that hold the mount while they run'
complete -c tresor -n "__fish_tresor_using_subcommand mount" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tresor -n "__fish_tresor_using_subcommand grant" -l to -d 'The member to give read access: name or member id' -r
complete -c tresor -n "__fish_tresor_using_subcommand grant" -s i -l identity -d 'Your identity file (a steward\'s) [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand grant" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand grant" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand grant" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand grant" -s r -l recursive -d 'Include everything below directories (stale tresor.tmp.* leftovers of interrupted runs found on the way are removed)'
complete -c tresor -n "__fish_tresor_using_subcommand grant" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tresor -n "__fish_tresor_using_subcommand revoke" -l from -d 'The member to take read access from: name or member id (also the id of someone already removed from the registry)' -r
complete -c tresor -n "__fish_tresor_using_subcommand revoke" -s i -l identity -d 'Your identity file (a steward\'s) [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand revoke" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand revoke" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand revoke" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand revoke" -s r -l recursive -d 'Include everything below directories (stale tresor.tmp.* leftovers of interrupted runs found on the way are removed)'
complete -c tresor -n "__fish_tresor_using_subcommand revoke" -l no-rekey -d 'Only remove the member\'s key from the header. Without a re-key, a content key the member kept still opens the stored content'
complete -c tresor -n "__fish_tresor_using_subcommand revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tresor -n "__fish_tresor_using_subcommand rekey" -s i -l identity -d 'Your identity file (a steward\'s) [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand rekey" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand rekey" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand rekey" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand rekey" -s r -l recursive -d 'Include everything below directories (stale tresor.tmp.* leftovers of interrupted runs found on the way are removed)'
complete -c tresor -n "__fish_tresor_using_subcommand rekey" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand acl" -s i -l identity -d 'Your identity, to show plaintext names (needed for a path in a mount)' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand acl" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand acl" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand acl" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand acl" -s r -l recursive -d 'Include everything below directories (stale tresor.tmp.* leftovers of interrupted runs found on the way are removed)'
complete -c tresor -n "__fish_tresor_using_subcommand acl" -l json -d 'One JSON object per file, for scripts'
complete -c tresor -n "__fish_tresor_using_subcommand acl" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and not __fish_seen_subcommand_from set show help" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and not __fish_seen_subcommand_from set show help" -f -a "set" -d 'Set the default recipients of files created below DIR (down to the next directory with a policy of its own). Member-signed headers below DIR that the new policy would no longer allow are re-signed by you'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and not __fish_seen_subcommand_from set show help" -f -a "show" -d 'Show DIR\'s own policy and the policy in force for it'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and not __fish_seen_subcommand_from set show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from set" -l default -d 'Members (names or ids) every new file below DIR is readable by, besides its creator. Give none to say "nobody by default"' -r
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from set" -s i -l identity -d 'Your identity file (a steward\'s) [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from set" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from set" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from set" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from set" -l unset -d 'Remove DIR\'s policy instead: its files follow the nearest ancestor\'s'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from show" -s i -l identity -d 'Your identity, to show plaintext names (needed for a path in a mount)' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from show" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from show" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from show" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from show" -l json -d 'One JSON object, for scripts'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "set" -d 'Set the default recipients of files created below DIR (down to the next directory with a policy of its own). Member-signed headers below DIR that the new policy would no longer allow are re-signed by you'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show DIR\'s own policy and the policy in force for it'
complete -c tresor -n "__fish_tresor_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -f -a "verify" -d 'Check logs: the hash chain, the sequence, the checkpoint signatures and Merkle roots against the volume\'s registry, anchors, and that each log\'s segments follow one another. Names the first bad record and what happened to it; ends with one summary line. Exit 0 verified, 1 tampering found'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -f -a "export" -d 'Write an offline bundle for reviewers: every log with records in the time range (all its segments), their latest checkpoints, witness cosignatures and proofs, and the signed registry, listed in a manifest signed by you. `tresor audit verify --bundle OUT --steward KEY` checks it on any machine'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -f -a "prove" -d 'Prove, for someone outside the volume, that a record is in a log (inclusion) or that a later checkpoint extends an earlier one (consistency); or check such a proof with only the steward\'s (or the log\'s) public key. Proofs are JSON (docs/AUDIT.md §4.6)'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -f -a "witness" -d 'Cosign, as an independent witness holding a key of its own, each log\'s latest checkpoint, after checking that it extends the one this witness cosigned before (kept in --state); refuse a rewritten history. The cosigned checkpoint is stored beside the log'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -f -a "show" -d 'Show records of one or more logs merged by time, filtered'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -f -a "who" -d 'Everyone who accessed a file, when and how, denied attempts included'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -f -a "access" -d 'Who could read a file at a given time, from its create record and the grant, revoke and re-key history'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -f -a "report" -d 'Summaries in the manner of aureport: records, failures and denials per member, file, operation, failure (errno) and denial'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -f -a "prune" -d 'Remove the log segments sealed before a time: only segments that verify, end with a signed checkpoint, and start their log (or follow removed ones). The removal is recorded in a session log first'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and not __fish_seen_subcommand_from verify export prove witness show who access report prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from verify" -l volume -d 'The volume\'s backing directory (its registry verifies the logs) [default: the directory above the logs\' tresor.audit]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from verify" -l anchors -d 'Checkpoint anchors kept outside the node: lines of `<mount-id> <seq> <hash>` (what audit_anchor_cmd= and syslog get)' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from verify" -l state -d 'Resume each log where the run that wrote FILE left off (its last verified checkpoint), reading only what was added since, and update FILE. Keep it where the storage operator cannot change it' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from verify" -l witness -d 'Fail unless each log\'s latest checkpoint carries a valid cosignature by this witness (its public key, `name+id+base64`, or a file holding it; see `tresor audit witness`). Repeatable' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from verify" -l bundle -d 'Check an offline bundle (`tresor audit export`) instead of the volume\'s logs, with only the steward\'s public key (--steward)' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from verify" -l steward -d 'The steward\'s public key (tresor1…) that a --bundle must verify with' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from verify" -l json -d 'One JSON object per log, then one with `"summary"`'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from export" -l volume -d 'The volume\'s backing directory (its registry verifies the logs) [default: the directory above the logs\' tresor.audit]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from export" -l since -d 'From this time (now, today, yesterday, -1h, -7d, a date, RFC 3339, unix seconds)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from export" -l until -d 'Up to this time (same forms)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from export" -s i -l identity -d 'Your identity file [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from export" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from export" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from export" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prove" -l volume -d 'The volume\'s backing directory (its registry verifies the logs) [default: the directory above the logs\' tresor.audit]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prove" -l mount -d 'The log: its mount id (or the start of it)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prove" -l record -d 'Inclusion: prove that the record with this seq is in the log' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prove" -l from -d 'Consistency: prove that a later checkpoint extends the checkpoint of this tree size' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prove" -l to -d 'The checkpoint to prove against, by tree size [default: the first that holds the record; for --from, the latest]' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prove" -l check -d 'Check a proof file instead (with --steward or --key); exit 0 if it holds, 1 if not' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prove" -l steward -d 'Check with the steward\'s public key (tresor1…): the proof\'s registry must verify with it and name the log\'s member' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prove" -l key -d 'Check with the log\'s own key (the proof\'s `log_key`, as published)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prove" -s o -l output -d 'Write the proof to FILE [default: standard output]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prove" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from witness" -l volume -d 'The volume\'s backing directory (its registry verifies the logs) [default: the directory above the logs\' tresor.audit]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from witness" -l key -d 'The witness\'s private key file (made by --new NAME)' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from witness" -l new -d 'Make a new witness key named NAME in --key FILE (and FILE.pub), print its public key, and cosign nothing' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from witness" -l state -d 'The witness\'s own directory: the checkpoint it last cosigned for each log. Keep it where nobody else can change it' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from witness" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l volume -d 'The volume\'s backing directory (its registry verifies the logs) [default: the directory above the logs\' tresor.audit]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l member -d 'Only records by (or about) this member: name or id' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l uid -d 'Only records of processes running as this numeric user id' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l path -d 'Only records for this plaintext path or below it' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l op -d 'Only these operations (open, release, create, rename, grant, ...): repeat or separate with commas' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l since -d 'From this time (now, today, yesterday, -1h, -7d, a date, RFC 3339, unix seconds)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l until -d 'Up to this time (same forms)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l process -d 'Only this process name (as /proc/PID/comm had it)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l host -d 'Only records written on this host' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l pid -d 'Only records of this process id' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -s i -l identity -d 'Your identity file [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l failed -d 'Only calls that failed (denied, I/O errors, ...)'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l json -d 'One JSON object per line (for jq)'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -l csv -d 'CSV with a header line'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from who" -l volume -d 'The volume\'s backing directory (its registry verifies the logs) [default: the directory above the logs\' tresor.audit]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from who" -l since -d 'From this time (now, today, yesterday, -1h, -7d, a date, RFC 3339, unix seconds)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from who" -l until -d 'Up to this time (same forms)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from who" -s i -l identity -d 'Your identity file [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from who" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from who" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from who" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from who" -l json -d 'One JSON object per line (for jq)'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from who" -l csv -d 'CSV with a header line'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from who" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from access" -l at -d 'When (now, today, yesterday, -1h, -7d, a date, RFC 3339, unix seconds)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from access" -l volume -d 'The volume\'s backing directory (its registry verifies the logs) [default: the directory above the logs\' tresor.audit]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from access" -s i -l identity -d 'Your identity file [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from access" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from access" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from access" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from access" -l json -d 'One JSON object, for scripts'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from access" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l volume -d 'The volume\'s backing directory (its registry verifies the logs) [default: the directory above the logs\' tresor.audit]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l member -d 'Only records by (or about) this member: name or id' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l uid -d 'Only records of processes running as this numeric user id' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l path -d 'Only records for this plaintext path or below it' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l op -d 'Only these operations (open, release, create, rename, grant, ...): repeat or separate with commas' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l since -d 'From this time (now, today, yesterday, -1h, -7d, a date, RFC 3339, unix seconds)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l until -d 'Up to this time (same forms)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l process -d 'Only this process name (as /proc/PID/comm had it)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l host -d 'Only records written on this host' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l pid -d 'Only records of this process id' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -s i -l identity -d 'Your identity file [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l failed -d 'Only calls that failed (denied, I/O errors, ...)'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l json -d 'One JSON object per line (for jq)'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -l csv -d 'CSV with a header line'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from report" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prune" -l before -d 'Remove segments whose last record is before this time' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prune" -l volume -d 'The volume\'s backing directory (its registry verifies the logs) [default: the directory above the logs\' tresor.audit]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prune" -s i -l identity -d 'Your identity file [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prune" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prune" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prune" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prune" -l dry-run -d 'Say what would be removed, remove nothing'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Check logs: the hash chain, the sequence, the checkpoint signatures and Merkle roots against the volume\'s registry, anchors, and that each log\'s segments follow one another. Names the first bad record and what happened to it; ends with one summary line. Exit 0 verified, 1 tampering found'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "export" -d 'Write an offline bundle for reviewers: every log with records in the time range (all its segments), their latest checkpoints, witness cosignatures and proofs, and the signed registry, listed in a manifest signed by you. `tresor audit verify --bundle OUT --steward KEY` checks it on any machine'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "prove" -d 'Prove, for someone outside the volume, that a record is in a log (inclusion) or that a later checkpoint extends an earlier one (consistency); or check such a proof with only the steward\'s (or the log\'s) public key. Proofs are JSON (docs/AUDIT.md §4.6)'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "witness" -d 'Cosign, as an independent witness holding a key of its own, each log\'s latest checkpoint, after checking that it extends the one this witness cosigned before (kept in --state); refuse a rewritten history. The cosigned checkpoint is stored beside the log'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show records of one or more logs merged by time, filtered'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "who" -d 'Everyone who accessed a file, when and how, denied attempts included'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "access" -d 'Who could read a file at a given time, from its create record and the grant, revoke and re-key history'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "report" -d 'Summaries in the manner of aureport: records, failures and denials per member, file, operation, failure (errno) and denial'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Remove the log segments sealed before a time: only segments that verify, end with a signed checkpoint, and start their log (or follow removed ones). The removal is recorded in a session log first'
complete -c tresor -n "__fish_tresor_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tresor -n "__fish_tresor_using_subcommand migrate" -l registry-valid-days -d 'Days the migrated registry stays valid [default: 90]' -r
complete -c tresor -n "__fish_tresor_using_subcommand migrate" -s i -l identity -d 'Your identity file (a steward\'s) [default: ~/.config/tresor/identity]' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand migrate" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand migrate" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand migrate" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand migrate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tresor -n "__fish_tresor_using_subcommand fsck" -s i -l identity -d 'A member\'s identity file: decrypts names, checks directory places, and opens the content of every file it can read. Without it, fsck checks structure and signatures only' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand fsck" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand fsck" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand fsck" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand fsck" -l json -d 'One JSON document: findings, summary (and the access table)'
complete -c tresor -n "__fish_tresor_using_subcommand fsck" -l repair -d 'Remove stale temporaries and move damaged files to tresor.quarantine/ at the backing root (nothing is deleted)'
complete -c tresor -n "__fish_tresor_using_subcommand fsck" -l report-access -d 'Per member: files and bytes they can read, and files nobody but their creator can read (for stewards)'
complete -c tresor -n "__fish_tresor_using_subcommand fsck" -l headers-only -d 'Check headers only, not content, even where the identity can read it'
complete -c tresor -n "__fish_tresor_using_subcommand fsck" -s q -l quiet -d 'No progress display'
complete -c tresor -n "__fish_tresor_using_subcommand fsck" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tresor -n "__fish_tresor_using_subcommand info" -s i -l identity -d 'A member\'s identity file: shows each policy\'s plaintext directory' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand info" -l passfile -d 'Read the passphrase from the first line of FILE (`-`: standard input). A file that group or others can read gets a warning' -r -F
complete -c tresor -n "__fish_tresor_using_subcommand info" -l passfd -d 'Read the passphrase from the first line of file descriptor N (inherited from the caller)' -r
complete -c tresor -n "__fish_tresor_using_subcommand info" -l extpass -d 'Run CMD (with /bin/sh -c) and read the passphrase from the first line of its output, e.g. `systemd-creds cat tresor-pass` or `secret-tool lookup tresor node`. A non-zero exit is an error' -r
complete -c tresor -n "__fish_tresor_using_subcommand info" -l json -d 'One JSON document (schema: docs/OPERATIONS-fsck-info.md)'
complete -c tresor -n "__fish_tresor_using_subcommand info" -s h -l help -d 'Print help'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "id" -d 'Create, show or re-seal your identity (your keys, sealed with a passphrase)'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "init" -d 'Create a new volume in an empty backing directory, with you as its steward'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "member" -d 'Add, remove or list the volume\'s members (the signed registry)'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "mount" -d 'Mount a volume: the plaintext view of BACKING appears at MOUNTPOINT'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "grant" -d 'Give a member read access to files (a steward who can read them)'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "revoke" -d 'Take a member\'s read access to files away, and re-key them'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "rekey" -d 'Give files a new content key (same readers), e.g. after a key leak'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "acl" -d 'Show who can read each file: readers with roles, who signed the header and when, and any header that breaks the access rules'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "policy" -d 'Default recipients of new files below a directory'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "audit" -d 'Verify, show and question audit logs'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "migrate" -d 'Convert a volume an older Tresor made to the current format, in place (a steward, with every mount of the volume stopped)'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "fsck" -d 'Check a volume without a mount: registry, directory IVs, names, headers, blocks, temporaries, links, planted files, audit logs'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "info" -d 'Show a volume\'s parameters, registry, members, policies, audit settings and this client\'s pin'
complete -c tresor -n "__fish_tresor_using_subcommand help; and not __fish_seen_subcommand_from id init member mount grant revoke rekey acl policy audit migrate fsck info help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from id" -f -a "new" -d 'Create a new identity, sealed with a passphrase (Argon2id)'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from id" -f -a "show" -d 'Print the public identity string and member id (no passphrase needed)'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from id" -f -a "passwd" -d 'Re-seal the identity file under a new passphrase'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from member" -f -a "add" -d 'Add a member by their public identity (`tresor id show` prints it)'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from member" -f -a "set-role" -d 'Change a member\'s role. A member made an auditor is dropped from every directory policy (auditors hold no content keys); the registry keeps at least one steward'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from member" -f -a "remove" -d 'Remove a member from the registry. Without --rekey their keys stay in file headers until revoked (`tresor revoke -r`)'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from member" -f -a "renew" -d 'Sign the registry again without changing it, renewing its validity (every change renews it too). Mounts and commands refuse a registry past its expiry: that bounds how long a rolled-back copy can be passed off to a node that has not seen a newer one'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from member" -f -a "audit-policy" -d 'Set what every mount\'s and command\'s audit log must be (signed in the registry; mounts refuse weaker options). Without options, shows the policy in force'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from member" -f -a "list" -d 'List members: name, role, member id'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "set" -d 'Set the default recipients of files created below DIR (down to the next directory with a policy of its own). Member-signed headers below DIR that the new policy would no longer allow are re-signed by you'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "show" -d 'Show DIR\'s own policy and the policy in force for it'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "verify" -d 'Check logs: the hash chain, the sequence, the checkpoint signatures and Merkle roots against the volume\'s registry, anchors, and that each log\'s segments follow one another. Names the first bad record and what happened to it; ends with one summary line. Exit 0 verified, 1 tampering found'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "export" -d 'Write an offline bundle for reviewers: every log with records in the time range (all its segments), their latest checkpoints, witness cosignatures and proofs, and the signed registry, listed in a manifest signed by you. `tresor audit verify --bundle OUT --steward KEY` checks it on any machine'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "prove" -d 'Prove, for someone outside the volume, that a record is in a log (inclusion) or that a later checkpoint extends an earlier one (consistency); or check such a proof with only the steward\'s (or the log\'s) public key. Proofs are JSON (docs/AUDIT.md §4.6)'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "witness" -d 'Cosign, as an independent witness holding a key of its own, each log\'s latest checkpoint, after checking that it extends the one this witness cosigned before (kept in --state); refuse a rewritten history. The cosigned checkpoint is stored beside the log'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "show" -d 'Show records of one or more logs merged by time, filtered'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "who" -d 'Everyone who accessed a file, when and how, denied attempts included'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "access" -d 'Who could read a file at a given time, from its create record and the grant, revoke and re-key history'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "report" -d 'Summaries in the manner of aureport: records, failures and denials per member, file, operation, failure (errno) and denial'
complete -c tresor -n "__fish_tresor_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "prune" -d 'Remove the log segments sealed before a time: only segments that verify, end with a signed checkpoint, and start their log (or follow removed ones). The removal is recorded in a session log first'
