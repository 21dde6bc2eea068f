use super::*;

/// The generated spec (typed), back as JSON for the checks below.
fn generate(id: &str, root: &Path, image: &ImageConfig, opts: &Options) -> Result<Value, Error> {
    super::generate(id, root, image, opts).map(|s| serde_json::to_value(s).expect("json"))
}

fn rootfs(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("berth-oci-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("etc")).unwrap();
    std::fs::write(
        d.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        d.join("etc/group"),
        "root:x:0:\nweb:x:1000:\nwheel:x:10:web\n",
    )
    .unwrap();
    d
}

fn image() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/bin/entry".into()],
        cmd: vec!["serve".into(), "--port=80".into()],
        env: vec!["PATH=/opt/bin:/bin".into(), "MODE=prod".into()],
        working_dir: "/srv".into(),
        user: String::new(),
        stop_signal: "SIGQUIT".into(),
        volumes: vec!["/data".into()],
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// A capability list as a set (the typed spec keeps capabilities as sets).
fn caps(v: &Value) -> std::collections::BTreeSet<String> {
    strs(v).into_iter().collect()
}

#[test]
fn docker_defaults_for_a_plain_container() {
    let root = rootfs("plain");
    let spec = generate("0123456789abcdef", &root, &image(), &Options::default()).unwrap();
    // It is a valid OCI runtime config.
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone()).unwrap();
    assert_eq!(spec["ociVersion"], "1.0.2");
    assert_eq!(spec["hostname"], "0123456789ab");
    assert_eq!(spec["root"]["path"], root.display().to_string());
    assert_eq!(spec["root"]["readonly"], false);
    let p = &spec["process"];
    assert_eq!(strs(&p["args"]), ["/bin/entry", "serve", "--port=80"]);
    assert_eq!(
        strs(&p["env"]),
        [
            "PATH=/opt/bin:/bin",
            "HOSTNAME=0123456789ab",
            "MODE=prod",
            "HOME=/root"
        ]
    );
    assert_eq!(p["cwd"], "/srv");
    assert_eq!(p["user"], json!({"uid": 0, "gid": 0}));
    assert_eq!(p["terminal"], false);
    // Docker's documented default set (docs.docker.com, "Runtime privilege and Linux
    // capabilities"), written out here rather than read from our own constant.
    let mut got = strs(&p["capabilities"]["bounding"]);
    got.sort();
    let mut docker = [
        "CAP_AUDIT_WRITE",
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_MKNOD",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
        "CAP_SETFCAP",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETUID",
        "CAP_SYS_CHROOT",
    ];
    docker.sort();
    assert_eq!(got, docker);
    assert_eq!(
        caps(&p["capabilities"]["effective"]),
        caps(&p["capabilities"]["bounding"])
    );
    assert!(p["capabilities"].get("inheritable").is_none());
    let dests: Vec<String> = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/mqueue",
            "/dev/shm",
            "/data"
        ]
    );
    let l = &spec["linux"];
    assert_eq!(strs(&l["maskedPaths"]), MASKED_PATHS);
    assert_eq!(strs(&l["readonlyPaths"]), READONLY_PATHS);
    let ns: Vec<&str> = l["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["mount", "network", "pid", "ipc", "uts"]);
    assert_eq!(l["cgroupsPath"], "/berth/0123456789abcdef");
    assert_eq!(
        l["resources"]["devices"],
        json!([{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "access": "m"}])
    );
    // Docker's seccomp profile: EPERM by default, common calls allowed, admin calls not.
    let sc = &l["seccomp"];
    assert_eq!(sc["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(sc["defaultErrnoRet"], 1);
    let allowed = strs(&sc["syscalls"][0]["names"]);
    for s in ["read", "write", "execve", "clock_gettime", "ptrace"] {
        assert!(allowed.iter().any(|a| a == s), "{s} allowed");
    }
    for s in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "reboot",
        "init_module",
        "kexec_load",
        "bpf",
    ] {
        assert!(!allowed.iter().any(|a| a == s), "{s} denied");
    }
    let rules = sc["syscalls"].as_array().unwrap();
    assert!(rules
        .iter()
        .any(|r| r["names"] == json!(["clone3"]) && r["errnoRet"] == 38));
    assert!(rules.iter().any(|r| r["names"] == json!(["clone"])
        && r["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
        && r["args"][0]["value"] == 2114060288u64));
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn args_entrypoint_env_user_and_workdir_overrides() {
    let root = rootfs("override");
    let opts = Options {
        args: Some(vec!["sh".into()]),
        env: vec!["MODE=dev".into(), "EXTRA=1".into()],
        user: Some("web".into()),
        workdir: Some("/tmp".into()),
        tty: true,
        ..Default::default()
    };
    let spec = generate("c1", &root, &image(), &opts).unwrap();
    let p = &spec["process"];
    assert_eq!(strs(&p["args"]), ["/bin/entry", "sh"]);
    assert_eq!(
        strs(&p["env"]),
        [
            "PATH=/opt/bin:/bin",
            "HOSTNAME=c1",
            "TERM=xterm",
            "MODE=dev",
            "EXTRA=1",
            "HOME=/home/web"
        ]
    );
    assert_eq!(
        p["user"],
        json!({"uid": 1000, "gid": 1000, "additionalGids": [10]})
    );
    assert_eq!(p["cwd"], "/tmp");
    assert_eq!(p["terminal"], true);
    // A new entrypoint drops the image's Cmd.
    let opts = Options {
        entrypoint: Some(vec!["/bin/true".into()]),
        ..Default::default()
    };
    let spec = generate("c1", &root, &image(), &opts).unwrap();
    assert_eq!(strs(&spec["process"]["args"]), ["/bin/true"]);
    // Nothing to run.
    let err = generate("c1", &root, &ImageConfig::default(), &Options::default()).unwrap_err();
    assert_eq!(err, Error::NoCommand);
    // Unknown user.
    let opts = Options {
        user: Some("ghost".into()),
        ..Default::default()
    };
    match generate("c1", &root, &image(), &opts).unwrap_err() {
        Error::User { user, message } => {
            assert_eq!(user, "ghost");
            assert!(
                message.contains("no matching entries in passwd"),
                "{message}"
            );
        }
        e => panic!("{e:?}"),
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn privileged_and_capabilities() {
    let root = rootfs("priv");
    let spec = generate(
        "p",
        &root,
        &image(),
        &Options {
            privileged: true,
            ..Default::default()
        },
    )
    .unwrap();
    // Every capability the engine itself holds (here: its own bounding set).
    assert_eq!(
        caps(&spec["process"]["capabilities"]["bounding"]),
        super::all_capabilities().into_iter().collect()
    );
    assert!(spec["linux"].get("seccomp").is_none());
    assert_eq!(spec["linux"]["maskedPaths"], json!([]));
    assert_eq!(
        spec["linux"]["resources"]["devices"],
        json!([{"allow": true, "access": "rwm"}])
    );
    let sys = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert!(strs(&sys["options"]).contains(&"rw".to_string()));

    let opts = Options {
        cap_add: vec!["sys_admin".into(), "CAP_NET_ADMIN".into()],
        cap_drop: vec!["NET_RAW".into(), "mknod".into()],
        ..Default::default()
    };
    let spec = generate("c", &root, &image(), &opts).unwrap();
    let caps = strs(&spec["process"]["capabilities"]["bounding"]);
    assert!(caps.contains(&"CAP_SYS_ADMIN".into()) && caps.contains(&"CAP_NET_ADMIN".into()));
    assert!(!caps.contains(&"CAP_NET_RAW".into()) && !caps.contains(&"CAP_MKNOD".into()));
    // With CAP_SYS_ADMIN the profile allows mount and lifts the clone restrictions.
    let sc = &spec["linux"]["seccomp"];
    assert!(strs(&sc["syscalls"][0]["names"]).contains(&"mount".into()));
    assert!(!sc["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["names"] == json!(["clone3"])));
    let opts = Options {
        cap_drop: vec!["ALL".into()],
        ..Default::default()
    };
    let spec = generate("c", &root, &image(), &opts).unwrap();
    assert_eq!(spec["process"]["capabilities"]["bounding"], json!([]));
    let opts = Options {
        cap_add: vec!["CAP_FLY".into()],
        ..Default::default()
    };
    assert_eq!(
        generate("c", &root, &image(), &opts).unwrap_err(),
        Error::UnknownCap("CAP_FLY".into())
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn mounts_namespaces_resources_ulimits() {
    let root = rootfs("mounts");
    let mut tmpfs = BTreeMap::new();
    tmpfs.insert("/dev/shm".to_string(), "size=1m".to_string());
    let mut sysctls = BTreeMap::new();
    sysctls.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
    let opts = Options {
        mounts: vec![MountOpt {
            source: "/host/data".into(),
            destination: "/data".into(),
            kind: "bind".into(),
            read_only: true,
            options: vec![],
        }],
        tmpfs,
        sysctls,
        network: NsMode::Host,
        pid: NsMode::Path("/proc/1/ns/pid".into()),
        uts: NsMode::Host,
        read_only: true,
        memory: Some(64 << 20),
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        pids_limit: Some(100),
        ulimits: vec![Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048,
        }],
        ..Default::default()
    };
    let spec = generate("m", &root, &image(), &opts).unwrap();
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone()).unwrap();
    let mounts = spec["mounts"].as_array().unwrap();
    let data: Vec<&Value> = mounts
        .iter()
        .filter(|m| m["destination"] == "/data")
        .collect();
    assert_eq!(data.len(), 1, "the bind replaces the image volume");
    assert_eq!(data[0]["source"], "/host/data");
    assert_eq!(strs(&data[0]["options"]), ["rbind", "ro"]);
    let shm: Vec<&Value> = mounts
        .iter()
        .filter(|m| m["destination"] == "/dev/shm")
        .collect();
    assert_eq!(shm.len(), 1, "--tmpfs /dev/shm replaces the default");
    assert!(strs(&shm[0]["options"]).contains(&"size=1m".into()));
    assert_eq!(spec["root"]["readonly"], true);
    assert!(spec.get("hostname").is_none(), "host UTS: no hostname");
    let ns = &spec["linux"]["namespaces"];
    assert_eq!(
        ns,
        &json!([{"type": "mount"}, {"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "ipc"}])
    );
    let r = &spec["linux"]["resources"];
    assert_eq!(r["memory"], json!({"limit": 64 << 20, "swap": 128 << 20}));
    assert_eq!(
        r["cpu"],
        json!({"shares": 512, "quota": 50000, "period": 100000})
    );
    assert_eq!(r["pids"], json!({"limit": 100}));
    assert_eq!(spec["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
    assert_eq!(
        spec["process"]["rlimits"],
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}])
    );
    let bad = Options {
        ulimits: vec![Ulimit {
            name: "bogus".into(),
            soft: 1,
            hard: 1,
        }],
        ..Default::default()
    };
    assert_eq!(
        generate("m", &root, &image(), &bad).unwrap_err(),
        Error::BadUlimit("bogus".into())
    );
    // A name without a value sets nothing (Docker keeps it in the config only).
    let novalue = Options {
        env: vec!["NOVALUE".into()],
        ..Default::default()
    };
    let spec = generate_json("m", &root, &image(), &novalue).unwrap();
    assert!(!strs(&spec["process"]["env"])
        .iter()
        .any(|e| e.starts_with("NOVALUE")));
    let bad = Options {
        env: vec!["=x".into()],
        ..Default::default()
    };
    assert_eq!(
        generate("m", &root, &image(), &bad).unwrap_err(),
        Error::BadEnv("=x".into())
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn capability_mask_by_kernel_number() {
    // Numbers from linux/capability.h: CHOWN 0, SYS_RESOURCE 24, CHECKPOINT_RESTORE 40.
    assert_eq!(
        super::caps_in_mask(1 | 1 << 24 | 1 << 40),
        ["CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_CHECKPOINT_RESTORE"]
    );
    // This host's root lacks CAP_SYS_RESOURCE: 0x1fffeffffff has all 41 but bit 24.
    let v = super::caps_in_mask(0x1fffeffffff);
    assert_eq!(v.len(), 40);
    assert!(!v.contains(&"CAP_SYS_RESOURCE".to_string()));
}
