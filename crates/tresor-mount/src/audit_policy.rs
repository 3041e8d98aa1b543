//! The volume's audit policy (signed in the registry, FORMAT.md §5.1)
//! against a mount's audit options: what the stewards require, no member
//! can turn off with a mount option. The check runs at mount time, before
//! anything is served; the mount's first record lists the options in force,
//! so weaker settings the policy allows are recorded as well as warned of.

use std::path::Path;

use tresor_audit::writer::{OnError, SyncMode};
use tresor_format::AuditPolicy;

use crate::config::AuditOptions;

/// Where the log goes under `policy` with `options`, or why the options are
/// refused. The strings in the `Ok` list are warnings about weaker
/// settings the policy allows.
pub fn check(policy: &AuditPolicy, options: &mut AuditOptions, backing: &Path) -> Result<Vec<String>, String> {
    let mut weaker = Vec::new();
    let mut refuse_or_warn = |what: String| {
        if policy.required {
            Err(format!("{what}: the volume's audit policy requires its log (a steward sets it with `tresor member audit-policy`)"))
        } else {
            weaker.push(what);
            Ok(())
        }
    };
    if !options.enabled {
        refuse_or_warn("audit=off turns the log off".into())?;
        return Ok(weaker);
    }
    if let Some(required_dir) = &policy.dir {
        match &options.dir {
            Some(dir) if dir != Path::new(required_dir) => refuse_or_warn(format!(
                "audit_dir={} is not the directory the volume names ({required_dir})",
                dir.display()
            ))?,
            Some(_) => {}
            None => options.dir = Some(required_dir.into()),
        }
    } else if let Some(dir) = &options.dir {
        let own = backing.join(tresor_audit::DEFAULT_DIR);
        if *dir != own {
            refuse_or_warn(format!("audit_dir={} moves the log out of the volume", dir.display()))?;
        }
    }
    let config = options.config(backing);
    if policy.anchors_required && !config.anchor_syslog && config.anchor_cmd.is_none() {
        return Err(
            "the volume's audit policy requires checkpoint anchors: add audit_anchor=syslog or audit_anchor_cmd=PATH"
                .into(),
        );
    }
    if let (SyncMode::Every(every), max @ 1..) = (config.sync, policy.max_sync_ms) {
        if every.as_millis() > u128::from(max) {
            return Err(format!(
                "audit_sync_ms={} is above the volume's bound of {max} ms (the power-loss window its stewards allow)",
                every.as_millis()
            ));
        }
    }
    if config.on_error == OnError::Continue {
        refuse_or_warn("audit_on_error=continue serves without records when the log fails".into())?;
    }
    Ok(weaker)
}
