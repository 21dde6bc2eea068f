//! `--init`: the init binary bind-mounted into the container as /sbin/docker-init. It
//! must be statically linked (the container's root has no libc of ours): a dynamic one is
//! refused, naming it, rather than failing inside the container.

use std::path::{Path, PathBuf};

use super::{Error, Result};
use crate::state::State;

/// daemon.json's init-path, else `berth-init` beside berthd, else on PATH.
pub(super) fn binary(d: &State) -> Result<String> {
    let found = match &d.images.reg.cfg.init_path {
        Some(p) => Some(p.clone()),
        None => beside_berthd().or_else(on_path),
    };
    let p = found.ok_or_else(|| {
        Error::Invalid(
            "--init: no berth-init beside berthd or on PATH (set init-path in daemon.json)".into(),
        )
    })?;
    match is_static(&p) {
        Ok(true) => Ok(p.display().to_string()),
        Ok(false) => Err(Error::Invalid(format!(
            "--init: {} is dynamically linked; the init must be a static binary (scripts/build-release.sh builds one)",
            p.display()
        ))),
        Err(e) => Err(Error::Invalid(format!("--init: {}: {e}", p.display()))),
    }
}

fn beside_berthd() -> Option<PathBuf> {
    let p = std::env::current_exe().ok()?.parent()?.join("berth-init");
    p.is_file().then_some(p)
}

fn on_path() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("berth-init"))
        .find(|p| p.is_file())
}

/// An ELF executable with no PT_INTERP program header (no dynamic loader).
fn is_static(p: &Path) -> std::io::Result<bool> {
    let b = std::fs::read(p)?;
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a 64-bit ELF executable",
        )
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[32..40].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > b.len() {
            return Err(bad());
        }
        // PT_INTERP = 3
        if u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_binaries_are_told_apart() {
        // busybox-static is static where installed; /bin/ls never is.
        assert!(!is_static(Path::new("/bin/ls")).unwrap());
        if Path::new("/bin/busybox").exists() {
            assert!(is_static(Path::new("/bin/busybox")).unwrap());
        }
        assert!(is_static(Path::new("/etc/hostname")).is_err());
    }
}
