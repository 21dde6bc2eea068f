//! berth-shim: see the library docs. Started by berth-manager (or anyone) as
//! `berth-shim --id ID --dir DIR`; returns once the shim serves on `DIR/shim.sock`.
//!
//! Two flags and no subcommands: they are read by hand rather than with clap, whose parser
//! and help renderer would otherwise stay resident in every idle shim (one per container).

use std::ffi::OsString;
use std::path::PathBuf;

const USAGE: &str = "usage: berth-shim --id ID --dir DIR

Per-container shim: stdio, logs, reaping, exit status.

  --id ID     container id
  --dir DIR   state directory (holds shim.sock, exit, logs of the shim and runtime)";

fn parse(mut args: impl Iterator<Item = OsString>) -> Result<(String, PathBuf), String> {
    let (mut id, mut dir) = (None, None);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy().into_owned();
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(OsString::from(v))),
            None => (a.clone(), None),
        };
        match flag.as_str() {
            "--id" | "--dir" => {
                let v = inline
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))?;
                if flag == "--id" {
                    id = Some(v.to_string_lossy().into_owned());
                } else {
                    dir = Some(PathBuf::from(v));
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "-V" | "--version" => {
                println!("berth-shim {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    match (id, dir) {
        (Some(id), Some(dir)) => Ok((id, dir)),
        (None, _) => Err("--id is required".into()),
        (_, None) => Err("--dir is required".into()),
    }
}

fn main() {
    let (id, dir) = match parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth-shim: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = berth_shim::daemon::start(&id, &dir) {
        eprintln!("berth-shim: {:#}", anyhow::Error::new(e));
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn p(args: &[&str]) -> Result<(String, std::path::PathBuf), String> {
        parse(args.iter().map(|s| s.into()))
    }

    #[test]
    fn flags() {
        assert_eq!(
            p(&["--id", "c1", "--dir", "/d"]).unwrap(),
            ("c1".into(), "/d".into())
        );
        assert_eq!(
            p(&["--dir=/d", "--id=c1"]).unwrap(),
            ("c1".into(), "/d".into())
        );
        assert_eq!(p(&["--id", "c1"]).unwrap_err(), "--dir is required");
        assert_eq!(p(&["--id"]).unwrap_err(), "--id needs a value");
        assert!(p(&["--id", "c", "--dir", "d", "x"])
            .unwrap_err()
            .contains("\"x\""));
    }
}
