//! The terminal: raw mode for `-t` sessions (restored on drop) and its size.

use std::os::fd::BorrowedFd;

use nix::sys::termios::{self, SetArg, Termios};

pub fn is_tty(fd: i32) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

/// Rows and columns of the terminal on `fd`.
pub fn size(fd: i32) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the valid struct we pass.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Raw mode on stdin until dropped.
pub struct Raw {
    saved: Termios,
}

impl Raw {
    pub fn enter() -> Option<Raw> {
        // SAFETY: fd 0 stays open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(0) };
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(Raw { saved })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: as above.
        let fd = unsafe { BorrowedFd::borrow_raw(0) };
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}
