//! Dockerfile instructions that only change an image's configuration — what `docker commit
//! --change` and `docker import --change` accept: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
//! ONBUILD (refused), STOPSIGNAL, USER, VOLUME, WORKDIR — and the merge of a container's
//! configuration over its image's.

use berth_manager::images::manifest::RunConfig;

use super::dockerfile::{self, json_form};

fn shell_or_exec(args: &str) -> Vec<String> {
    json_form(args).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), args.trim().into()])
}

/// `k=v k2="v 2"` or the legacy `k v` form, `$VAR`s from the config's environment (the
/// Dockerfile's rules: super::dockerfile).
fn pairs(rc: &RunConfig, args: &str, what: &str) -> Result<Vec<(String, String)>, String> {
    let vars: dockerfile::Vars = rc
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    dockerfile::pairs(args, &vars, '\\').map_err(|e| format!("{what}: {e}"))
}

/// Set `KEY=value` in an environment list, replacing an earlier value of KEY.
pub fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or(kv);
    if let Some(e) = env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
        *e = kv.to_string();
    } else {
        env.push(kv.to_string());
    }
}

/// Apply one instruction (`"CMD [\"sh\"]"`, `"ENV A=b"`…) to `rc`.
pub fn apply(rc: &mut RunConfig, line: &str) -> Result<(), String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(());
    }
    let (word, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let args = args.trim();
    match word.to_ascii_uppercase().as_str() {
        "CMD" => rc.cmd = Some(shell_or_exec(args)),
        "ENTRYPOINT" => rc.entrypoint = Some(shell_or_exec(args)),
        "ENV" => {
            let kv = pairs(rc, args, "ENV")?;
            let env = rc.env.get_or_insert_with(Vec::new);
            for (k, v) in kv {
                set_env(env, &format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let kv = pairs(rc, args, "LABEL")?;
            let labels = rc.labels.get_or_insert_with(Default::default);
            for (k, v) in kv {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = rc.exposed_ports.get_or_insert_with(Default::default);
            for p in args.split_whitespace() {
                let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                if num.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(format!("EXPOSE: invalid port {p:?}"));
                }
                ports.insert(format!("{num}/{proto}"), serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let vols = rc.volumes.get_or_insert_with(Default::default);
            let list = json_form(args)
                .unwrap_or_else(|| args.split_whitespace().map(String::from).collect());
            for v in list {
                if !v.starts_with('/') {
                    return Err(format!("VOLUME: {v:?} is not an absolute path"));
                }
                vols.insert(v, serde_json::json!({}));
            }
        }
        "USER" if !args.is_empty() => rc.user = args.to_string(),
        "WORKDIR" if !args.is_empty() => {
            rc.working_dir = if args.starts_with('/') {
                args.to_string()
            } else {
                format!("{}/{args}", rc.working_dir.trim_end_matches('/'))
            }
        }
        "STOPSIGNAL" if !args.is_empty() => rc.stop_signal = args.to_string(),
        w => {
            return Err(format!(
                "{w} is not a valid change command (want one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, with arguments)"
            ))
        }
    }
    Ok(())
}

fn strs(v: &serde_json::Value) -> Option<Vec<String>> {
    let a = v.as_array()?;
    Some(
        a.iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
    )
}

/// Lay a Docker container `Config` (JSON, as clients send it) over an image's config: set
/// fields replace, Env/Labels/ExposedPorts/Volumes merge.
pub fn overlay(rc: &mut RunConfig, cfg: &serde_json::Value) {
    if let Some(c) = strs(&cfg["Cmd"]).filter(|c| !c.is_empty()) {
        rc.cmd = Some(c);
    } else if let Some(c) = cfg["Cmd"].as_str().filter(|c| !c.is_empty()) {
        rc.cmd = Some(shell_or_exec(c));
    }
    if let Some(e) = strs(&cfg["Entrypoint"]).filter(|c| !c.is_empty()) {
        rc.entrypoint = Some(e);
    }
    for kv in strs(&cfg["Env"]).unwrap_or_default() {
        set_env(rc.env.get_or_insert_with(Vec::new), &kv);
    }
    if let Some(w) = cfg["WorkingDir"].as_str().filter(|w| !w.is_empty()) {
        rc.working_dir = w.to_string();
    }
    if let Some(u) = cfg["User"].as_str().filter(|u| !u.is_empty()) {
        rc.user = u.to_string();
    }
    if let Some(s) = cfg["StopSignal"].as_str().filter(|s| !s.is_empty()) {
        rc.stop_signal = s.to_string();
    }
    if let Some(l) = cfg["Labels"].as_object() {
        let labels = rc.labels.get_or_insert_with(Default::default);
        for (k, v) in l {
            labels.insert(k.clone(), v.as_str().unwrap_or("").to_string());
        }
    }
    for (field, key) in [
        (&mut rc.exposed_ports, "ExposedPorts"),
        (&mut rc.volumes, "Volumes"),
    ] {
        if let Some(m) = cfg[key].as_object().filter(|m| !m.is_empty()) {
            let set = field.get_or_insert_with(Default::default);
            for k in m.keys() {
                set.insert(k.clone(), serde_json::json!({}));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_change_the_config() {
        let mut rc = RunConfig::default();
        apply(&mut rc, r#"CMD ["sh", "-c", "echo hi"]"#).unwrap();
        assert_eq!(rc.cmd.as_deref().unwrap(), ["sh", "-c", "echo hi"]);
        apply(&mut rc, "ENTRYPOINT top -b").unwrap();
        assert_eq!(
            rc.entrypoint.as_deref().unwrap(),
            ["/bin/sh", "-c", "top -b"]
        );
        apply(&mut rc, r#"ENV A=1 B="two words""#).unwrap();
        apply(&mut rc, "ENV A 3").unwrap();
        assert_eq!(rc.env.as_deref().unwrap(), ["A=3", "B=two words"]);
        apply(&mut rc, "EXPOSE 80 53/udp").unwrap();
        assert!(rc.exposed_ports.as_ref().unwrap().contains_key("53/udp"));
        apply(&mut rc, "WORKDIR /srv").unwrap();
        apply(&mut rc, "WORKDIR app").unwrap();
        assert_eq!(rc.working_dir, "/srv/app");
        apply(&mut rc, r#"VOLUME ["/data"]"#).unwrap();
        assert!(rc.volumes.as_ref().unwrap().contains_key("/data"));
        assert!(apply(&mut rc, "RUN rm -rf /").unwrap_err().contains("RUN"));
        assert!(apply(&mut rc, "EXPOSE http").is_err());
        assert!(apply(&mut rc, "VOLUME data").is_err());
        let mut base = RunConfig {
            env: Some(vec!["PATH=/bin".into(), "X=1".into()]),
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        overlay(
            &mut base,
            &serde_json::json!({"Env": ["X=2"], "Cmd": ["top"], "User": "nobody"}),
        );
        assert_eq!(base.env.as_deref().unwrap(), ["PATH=/bin", "X=2"]);
        assert_eq!(base.cmd.as_deref().unwrap(), ["top"]);
        assert_eq!(base.user, "nobody");
    }
}
