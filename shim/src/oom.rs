//! OOM notifications for a container's memory cgroup, without polling.
//!
//! * cgroup v1: an eventfd registered on `memory.oom_control` through `cgroup.event_control`;
//!   the kernel signals it on every OOM in the cgroup, and once more when the cgroup is removed.
//! * cgroup v2: inotify on `memory.events` (the kernel raises a modify event when a counter
//!   changes); an OOM is an increase of its `oom_kill` counter. `IN_IGNORED` means the cgroup
//!   is gone.
//!
//! [`watch`] returns when the cgroup disappears (the container was deleted).

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("watch OOM events of cgroup {dir}: {what}")]
    Setup {
        dir: PathBuf,
        what: &'static str,
        #[source]
        err: io::Error,
    },
}

fn setup<'a>(dir: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |err| Error::Setup {
        dir: dir.to_path_buf(),
        what,
        err,
    }
}

/// An owned descriptor for tokio's reactor (which wants `AsRawFd`).
struct Owned<T: AsFd>(T);

impl<T: AsFd> AsRawFd for Owned<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

fn register<T: AsFd>(fd: T) -> io::Result<AsyncFd<Owned<T>>> {
    // SAFETY: the AsyncFd owns the descriptor (moved in), so it stays open for as long as it
    // is registered and is closed only after deregistration, when the AsyncFd drops.
    unsafe { AsyncFd::register(Owned(fd)) }.map_err(|e| e.into_parts().1)
}

/// Call `on_oom` for every OOM kill in the memory cgroup `dir` until the cgroup is removed.
/// `v2` selects the unified hierarchy's interface. Setup errors return at once; nothing is
/// left registered (the eventfd or inotify descriptor closes with this future).
pub async fn watch(dir: &Path, v2: bool, mut on_oom: impl FnMut() + Send) -> Result<(), Error> {
    if v2 {
        watch_v2(dir, &mut on_oom).await
    } else {
        watch_v1(dir, &mut on_oom).await
    }
}

async fn watch_v1(dir: &Path, on_oom: &mut (dyn FnMut() + Send)) -> Result<(), Error> {
    use nix::sys::eventfd::{EfdFlags, EventFd};
    let ctl = std::fs::File::open(dir.join("memory.oom_control"))
        .map_err(setup(dir, "open memory.oom_control"))?;
    let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|e| setup(dir, "eventfd")(e.into()))?;
    std::fs::write(
        dir.join("cgroup.event_control"),
        format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()),
    )
    .map_err(setup(dir, "write cgroup.event_control"))?;
    let afd = register(efd).map_err(setup(dir, "register eventfd"))?;
    loop {
        let mut ready = afd
            .readable()
            .await
            .map_err(setup(dir, "wait on eventfd"))?;
        match ready.try_io(|fd| fd.get_ref().0.read().map_err(io::Error::from)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(setup(dir, "read eventfd")(e)),
            Err(_would_block) => continue,
        }
        // The same eventfd fires when the cgroup is removed.
        if !dir.join("memory.oom_control").exists() {
            return Ok(());
        }
        on_oom();
    }
}

fn oom_kills_v2(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.events")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

async fn watch_v2(dir: &Path, on_oom: &mut (dyn FnMut() + Send)) -> Result<(), Error> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| setup(dir, "inotify_init")(e.into()))?;
    ino.add_watch(&dir.join("memory.events"), AddWatchFlags::IN_MODIFY)
        .map_err(|e| setup(dir, "watch memory.events")(e.into()))?;
    let mut seen = oom_kills_v2(dir).unwrap_or(0);
    let afd = register(ino).map_err(setup(dir, "register inotify"))?;
    loop {
        let mut ready = afd
            .readable()
            .await
            .map_err(setup(dir, "wait on inotify"))?;
        let events = match ready.try_io(|fd| fd.get_ref().0.read_events().map_err(io::Error::from))
        {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => return Err(setup(dir, "read inotify")(e)),
            Err(_would_block) => continue,
        };
        if events
            .iter()
            .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
        {
            return Ok(());
        }
        let Some(now) = oom_kills_v2(dir) else {
            return Ok(());
        };
        // One event per kill, even when several land between two wake-ups.
        for _ in seen..now {
            on_oom();
        }
        seen = seen.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_counter() {
        let d = std::env::temp_dir().join(format!("berth-oom-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 3\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(oom_kills_v2(&d), Some(3));
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(oom_kills_v2(&d), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn setup_error_names_the_cgroup() {
        let d = Path::new("/nonexistent/berth-cgroup");
        let e = watch(d, false, || {}).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("/nonexistent/berth-cgroup"), "{text}");
        assert!(text.contains("memory.oom_control"), "{text}");
    }
}
