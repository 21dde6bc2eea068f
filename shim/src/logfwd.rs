//! Log forwarders: every line of the init's output also sent to syslog (a unix socket, UDP
//! or TCP; RFC 3164 or RFC 5424 framing) or to the systemd journal (its native datagram
//! protocol), as Docker's syslog and journald drivers send them. The berthd side resolves
//! the options (tag, facility, address) and checks them; here they are only applied.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use crate::jsonlog::Stream;

/// The journal's socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

enum Conn {
    UnixGram(UnixDatagram),
    UnixStream(UnixStream),
    Udp(UdpSocket),
    Tcp(TcpStream),
}

impl Conn {
    fn send(&mut self, msg: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::UnixGram(s) => s.send(msg).map(|_| ()),
            Conn::Udp(s) => s.send(msg).map(|_| ()),
            // Stream transports: one message a line.
            Conn::UnixStream(s) => s.write_all(&[msg, b"\n"].concat()),
            Conn::Tcp(s) => s.write_all(&[msg, b"\n"].concat()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SyslogFormat {
    /// `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG` (Docker's default on unix sockets).
    Unix,
    /// `<PRI>TIMESTAMP HOSTNAME TAG[PID]: MSG`.
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOSTNAME TAG PID TAG - MSG`, seconds or microseconds.
    Rfc5424 { micro: bool },
}

pub struct Syslog {
    conn: Conn,
    /// unix:// path, to reconnect after the server restarts.
    format: SyslogFormat,
    facility: u8,
    tag: String,
    hostname: String,
    pid: u32,
}

pub struct Journald {
    sock: UnixDatagram,
    path: String,
    fields: Vec<(String, String)>,
}

pub enum Forward {
    Syslog(Syslog),
    Journald(Journald),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("log forwarder {0:?} is not known (syslog or journald)")]
    Unknown(String),
    #[error("syslog-address {address:?}: {message}")]
    Address { address: String, message: String },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        err: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |err| Error::Io { what, err }
}

impl Forward {
    /// A forwarder by name with its options (`syslog-address`, `syslog-format`,
    /// `syslog-facility` as a number, `tag`; for journald also `container-id`,
    /// `container-name`).
    pub fn open(name: &str, o: &BTreeMap<String, String>) -> Result<Forward, Error> {
        let get = |k: &str| o.get(k).map(String::as_str).unwrap_or("");
        match name {
            "syslog" => Ok(Forward::Syslog(Syslog::open(
                get("syslog-address"),
                get("syslog-format"),
                get("syslog-facility").parse().unwrap_or(3),
                get("tag"),
            )?)),
            "journald" => {
                let path = o
                    .get("journal-socket")
                    .cloned()
                    .unwrap_or_else(|| JOURNAL_SOCKET.into());
                let mut fields = Vec::new();
                for (field, key) in [
                    ("CONTAINER_ID", "container-id"),
                    ("CONTAINER_ID_FULL", "container-id-full"),
                    ("CONTAINER_NAME", "container-name"),
                    ("CONTAINER_TAG", "tag"),
                    ("SYSLOG_IDENTIFIER", "tag"),
                    ("IMAGE_NAME", "image-name"),
                ] {
                    if !get(key).is_empty() {
                        fields.push((field.to_string(), get(key).to_string()));
                    }
                }
                let sock = UnixDatagram::unbound().map_err(io("journald socket"))?;
                sock.connect(&path)
                    .map_err(io(format!("connect to the journal at {path}")))?;
                Ok(Forward::Journald(Journald { sock, path, fields }))
            }
            other => Err(Error::Unknown(other.to_string())),
        }
    }

    /// Send one line (without its newline) of `stream`, written at `now` (since the epoch).
    pub fn send(&mut self, stream: Stream, line: &[u8], now: Duration) -> Result<(), Error> {
        match self {
            Forward::Syslog(s) => s.send(stream, line, now),
            Forward::Journald(j) => j.send(stream, line),
        }
    }
}

impl Syslog {
    fn open(address: &str, format: &str, facility: u8, tag: &str) -> Result<Syslog, Error> {
        let address = if address.is_empty() {
            "unix:///dev/log"
        } else {
            address
        };
        let bad = |message: &str| Error::Address {
            address: address.to_string(),
            message: message.to_string(),
        };
        let (scheme, rest) = match address.split_once("://") {
            Some((s, r)) => (s, r),
            None => {
                return Err(bad(
                    "want unix://PATH, unixgram://PATH, udp://HOST:PORT or tcp://HOST:PORT",
                ))
            }
        };
        let with_port = |r: &str| {
            if r.contains(':') {
                r.to_string()
            } else {
                format!("{r}:514")
            }
        };
        let conn = match scheme {
            "unix" => match UnixDatagram::unbound().and_then(|s| s.connect(rest).map(|_| s)) {
                Ok(s) => Conn::UnixGram(s),
                Err(_) => Conn::UnixStream(
                    UnixStream::connect(rest)
                        .map_err(io(format!("connect to syslog at {address}")))?,
                ),
            },
            "unixgram" => {
                let s = UnixDatagram::unbound().map_err(io("syslog socket"))?;
                s.connect(rest)
                    .map_err(io(format!("connect to syslog at {address}")))?;
                Conn::UnixGram(s)
            }
            "udp" => {
                let s = UdpSocket::bind(if rest.starts_with('[') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                })
                .map_err(io("syslog socket"))?;
                s.connect(with_port(rest))
                    .map_err(io(format!("connect to syslog at {address}")))?;
                Conn::Udp(s)
            }
            "tcp" => Conn::Tcp(
                TcpStream::connect(with_port(rest))
                    .map_err(io(format!("connect to syslog at {address}")))?,
            ),
            _ => return Err(bad("unsupported scheme")),
        };
        let format = match format {
            "" if matches!(conn, Conn::UnixGram(_) | Conn::UnixStream(_)) => SyslogFormat::Unix,
            "" | "rfc3164" => SyslogFormat::Rfc3164,
            "rfc5424" => SyslogFormat::Rfc5424 { micro: false },
            "rfc5424micro" => SyslogFormat::Rfc5424 { micro: true },
            f => return Err(bad(&format!("unknown syslog-format {f:?}"))),
        };
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        Ok(Syslog {
            conn,
            format,
            facility,
            tag: tag.to_string(),
            hostname,
            pid: std::process::id(),
        })
    }

    fn message(&self, stream: Stream, line: &[u8], now: Duration) -> Vec<u8> {
        // Severity: info for stdout, err for stderr.
        let severity = if stream == Stream::Stderr { 3 } else { 6 };
        let pri = u32::from(self.facility) * 8 + severity;
        let rfc3339 = berth_runtime::state::rfc3339(now.as_secs() as i64, now.subsec_nanos());
        let head = match self.format {
            SyslogFormat::Unix => format!("<{pri}>{} {}[{}]: ", stamp(now), self.tag, self.pid),
            SyslogFormat::Rfc3164 => format!(
                "<{pri}>{} {} {}[{}]: ",
                stamp(now),
                self.hostname,
                self.tag,
                self.pid
            ),
            SyslogFormat::Rfc5424 { micro } => {
                // 2026-12-03T19:40:01Z or 2026-12-03T19:40:01.123456Z
                let t = if micro {
                    format!("{}.{:06}Z", &rfc3339[..19], now.subsec_micros())
                } else {
                    format!("{}Z", &rfc3339[..19])
                };
                format!(
                    "<{pri}>1 {t} {} {} {} {} - ",
                    self.hostname, self.tag, self.pid, self.tag
                )
            }
        };
        [head.as_bytes(), line].concat()
    }

    fn send(&mut self, stream: Stream, line: &[u8], now: Duration) -> Result<(), Error> {
        let msg = self.message(stream, line, now);
        self.conn.send(&msg).map_err(io("send to syslog"))
    }
}

/// RFC 3164's timestamp: `Mmm dd hh:mm:ss` (UTC).
fn stamp(now: Duration) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = berth_runtime::state::rfc3339(now.as_secs() as i64, 0);
    // YYYY-MM-DDTHH:MM:SS
    let month: usize = t[5..7].parse().unwrap_or(1);
    let day: u32 = t[8..10].parse().unwrap_or(1);
    format!("{} {day:>2} {}", MONTHS[month.clamp(1, 12) - 1], &t[11..19])
}

impl Journald {
    fn send(&mut self, stream: Stream, line: &[u8]) -> Result<(), Error> {
        let priority = if stream == Stream::Stderr { "3" } else { "6" };
        let mut msg = Vec::new();
        // MESSAGE in the binary-safe form: name, newline, little-endian length, data.
        msg.extend_from_slice(b"MESSAGE\n");
        msg.extend_from_slice(&(line.len() as u64).to_le_bytes());
        msg.extend_from_slice(line);
        msg.push(b'\n');
        msg.extend_from_slice(format!("PRIORITY={priority}\n").as_bytes());
        for (k, v) in &self.fields {
            msg.extend_from_slice(format!("{k}={v}\n").as_bytes());
        }
        self.sock
            .send(&msg)
            .map(|_| ())
            .map_err(io(format!("send to the journal at {}", self.path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn syslog_messages_over_udp_and_unix() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = format!("udp://{}", server.local_addr().unwrap());
        let mut f = Forward::open(
            "syslog",
            &opts(&[
                ("syslog-address", &addr),
                ("tag", "web"),
                ("syslog-facility", "16"),
                ("syslog-format", "rfc5424"),
            ]),
        )
        .unwrap();
        f.send(Stream::Stderr, b"boom", Duration::from_secs(1_764_790_000))
            .unwrap();
        let mut b = [0u8; 512];
        let n = server.recv(&mut b).unwrap();
        let m = String::from_utf8_lossy(&b[..n]).into_owned();
        // local0 (16) * 8 + err (3) = 131.
        assert!(m.starts_with("<131>1 2025-12-03T19:26:40Z "), "{m}");
        assert!(
            m.ends_with(&format!(" web {} web - boom", std::process::id())),
            "{m}"
        );
        let dir = std::env::temp_dir().join(format!("berth-logfwd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("log");
        let server = UnixDatagram::bind(&sock).unwrap();
        let addr = format!("unix://{}", sock.display());
        let mut f =
            Forward::open("syslog", &opts(&[("syslog-address", &addr), ("tag", "t")])).unwrap();
        f.send(Stream::Stdout, b"hi", Duration::from_secs(1_764_790_000))
            .unwrap();
        let n = server.recv(&mut b).unwrap();
        let m = String::from_utf8_lossy(&b[..n]).into_owned();
        // daemon (3) * 8 + info (6) = 30.
        assert_eq!(
            m,
            format!("<30>Dec  3 19:26:40 t[{}]: hi", std::process::id())
        );
        assert!(Forward::open("syslog", &opts(&[("syslog-address", "bogus")])).is_err());
        assert!(Forward::open(
            "syslog",
            &opts(&[("syslog-address", &addr), ("syslog-format", "x")])
        )
        .is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn journal_datagrams_carry_the_fields() {
        let dir = std::env::temp_dir().join(format!("berth-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("socket");
        let server = UnixDatagram::bind(&sock).unwrap();
        let mut f = Forward::open(
            "journald",
            &opts(&[
                ("journal-socket", sock.to_str().unwrap()),
                ("container-name", "web"),
                ("tag", "abc"),
            ]),
        )
        .unwrap();
        f.send(Stream::Stdout, b"hello", Duration::ZERO).unwrap();
        let mut b = [0u8; 512];
        let n = server.recv(&mut b).unwrap();
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&5u64.to_le_bytes());
        want.extend_from_slice(
            b"hello\nPRIORITY=6\nCONTAINER_NAME=web\nCONTAINER_TAG=abc\nSYSLOG_IDENTIFIER=abc\n",
        );
        assert_eq!(&b[..n], &want[..]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
