//! docker's management command groups: `berth container VERB …` and `berth image VERB …`
//! are the top-level commands of the same meaning (`container ls` is `ps`, `image rm` is
//! `rmi`), rewritten before parsing so each verb keeps one definition of its flags.

use std::ffi::OsString;

/// `container` verbs and the top-level command each is.
const CONTAINER: &[(&str, &str)] = &[
    ("ls", "ps"),
    ("list", "ps"),
    ("ps", "ps"),
    ("rm", "rm"),
    ("remove", "rm"),
    ("run", "run"),
    ("create", "create"),
    ("start", "start"),
    ("stop", "stop"),
    ("restart", "restart"),
    ("kill", "kill"),
    ("logs", "logs"),
    ("exec", "exec"),
    ("attach", "attach"),
    ("top", "top"),
    ("inspect", "inspect"),
    ("cp", "cp"),
    ("export", "export"),
    ("commit", "commit"),
    ("diff", "diff"),
    ("wait", "wait"),
    ("pause", "pause"),
    ("unpause", "unpause"),
    ("rename", "rename"),
    ("port", "port"),
    ("stats", "stats"),
    ("update", "update"),
    ("prune", "container-prune"),
];

/// `image` verbs.
const IMAGE: &[(&str, &str)] = &[
    ("ls", "images"),
    ("list", "images"),
    ("rm", "rmi"),
    ("remove", "rmi"),
    ("pull", "pull"),
    ("push", "push"),
    ("tag", "tag"),
    ("save", "save"),
    ("load", "load"),
    ("history", "history"),
    ("inspect", "inspect"),
    ("build", "build"),
    ("import", "import"),
    ("prune", "image-prune"),
];

/// The arguments with a `container`/`image` group and its verb replaced by the top-level
/// command; anything else unchanged (an unknown verb then reaches the group's own help).
pub fn expand(args: Vec<OsString>) -> Vec<OsString> {
    // The first word that is neither an option nor the value of -H/--host.
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "-H" || a == "--host" {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    let table = match args
        .get(i)
        .map(|a| a.to_string_lossy().into_owned())
        .as_deref()
    {
        Some("container") => CONTAINER,
        Some("image") => IMAGE,
        _ => return args,
    };
    let Some(verb) = args.get(i + 1).map(|v| v.to_string_lossy().into_owned()) else {
        return args;
    };
    let Some((_, cmd)) = table.iter().find(|(v, _)| *v == verb) else {
        return args;
    };
    let mut out: Vec<OsString> = args[..i].to_vec();
    out.push(OsString::from(*cmd));
    out.extend_from_slice(&args[i + 2..]);
    out
}

/// What `berth container` / `berth image` alone (or with an unknown verb) print.
pub fn help(group: &str) -> String {
    let table = if group == "image" { IMAGE } else { CONTAINER };
    let mut s = format!("Usage:  berth {group} COMMAND\n\nManage {group}s\n\nCommands:\n");
    for (v, cmd) in table {
        s.push_str(&format!("  {v:<10} (berth {cmd})\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(a: &[&str]) -> Vec<String> {
        expand(a.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn verbs_become_commands() {
        assert_eq!(
            ex(&["berth", "container", "ls", "-a"]),
            ["berth", "ps", "-a"]
        );
        assert_eq!(
            ex(&["berth", "-H", "unix:///x", "image", "rm", "a"]),
            ["berth", "-H", "unix:///x", "rmi", "a"]
        );
        assert_eq!(
            ex(&["berth", "image", "prune", "-a"]),
            ["berth", "image-prune", "-a"]
        );
        assert_eq!(
            ex(&["berth", "container", "nope"]),
            ["berth", "container", "nope"]
        );
        assert_eq!(
            ex(&["berth", "run", "image", "ls"]),
            ["berth", "run", "image", "ls"]
        );
    }
}
