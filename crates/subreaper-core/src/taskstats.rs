//! A zombie's name and start time from the kernel's per-task accounting (taskstats, over
//! generic netlink), without `/proc`.
//!
//! Reading `/proc/<pid>/stat` makes the kernel build a dentry and two inodes for the pid, and
//! tear them down again at the reap: on Linux 6.18 that costs 10–12 µs a zombie, several
//! times the peek and the reap together. One taskstats request for the pid (a `send` and a
//! `recv` on a netlink socket) gives the name and the time since the process started in
//! about 2–4 µs, and leaves nothing behind to tear down.
//!
//! The start time `/proc` shows is counted on the boot-time clock in ticks; taskstats gives the
//! age in microseconds on the monotonic clock. The two clocks differ only by the time the
//! machine spent suspended, so the age is used only while they agree (a machine never
//! suspended since boot), and only where the age pins one tick: both ends of the window the
//! kernel's reading fell in must fall in the same tick. Otherwise, and wherever taskstats is
//! not served (it wants `CAP_NET_ADMIN` in the initial user namespace: root on the host, or a
//! container given that capability; and a kernel with `CONFIG_TASKSTATS`), the caller reads
//! `/proc`.
//!
//! The process keeps one socket, opened when the engine starts (so that it is there from the
//! first exit on, not an fd that appears later) and closed if the kernel refuses a request.
//! Requests are made under its lock: the drain, which alone asks, makes them one at a time.
//!
//! `SUBREAPER_NO_TASKSTATS` set (to anything but the empty string) in the environment before
//! the first exit, or [`set_enabled`]`(false)`, keeps the engine on `/proc` (for a seccomp
//! policy that forbids netlink sockets, or to compare the two).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;

use crate::exit::Rusage;
use crate::procfs;
use crate::wait_source::ProcInfo;

// <linux/netlink.h>, <linux/genetlink.h>, <linux/taskstats.h>: not all in the libc crate.
const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
const NLA_HDRLEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const TASKSTATS_CMD_GET: u8 = 1;
const TASKSTATS_CMD_ATTR_PID: u16 = 1;
const TASKSTATS_TYPE_STATS: u16 = 3;
const TASKSTATS_TYPE_AGGR_PID: u16 = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;

// Offsets in `struct taskstats`: fields are only ever appended to it, and these are there
// from version 1 on.
const TS_COMM: usize = 80;
const TS_COMM_LEN: usize = 32;
const TS_ETIME: usize = 144;
const TS_UTIME: usize = 152;
const TS_STIME: usize = 160;
const TS_MINFLT: usize = 168;
const TS_MAJFLT: usize = 176;
const TS_MIN_LEN: usize = 184;

/// Set once taskstats was refused (no permission, no such family) or no socket could be
/// opened: from then on every zombie is read from `/proc`, which is always right, only slower.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether the engine may ask taskstats: `UNSET` until the environment is first read.
static ENABLED: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = 2;

/// Whether the engine may identify zombies by taskstats (the default, unless
/// `SUBREAPER_NO_TASKSTATS` is set); whether the kernel serves it is another matter.
pub fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        UNSET => {
            let on = std::env::var_os("SUBREAPER_NO_TASKSTATS").map_or(true, |v| v.is_empty());
            ENABLED.store(on as u8, Ordering::Relaxed);
            on
        }
        on => on == 1,
    }
}

/// Lets the engine ask taskstats, or keeps it on `/proc`, from the next exit on.
pub fn set_enabled(on: bool) {
    ENABLED.store(on as u8, Ordering::Relaxed);
}

/// How far apart two readings of the clocks may be taken to agree: the time between the two
/// reads, well within the start-tick margin (`procfs::start_tick_between`). A suspend puts
/// them seconds apart; a reader preempted between the two reads just falls back to `/proc`.
const CLOCKS_AGREE_NS: u64 = 5_000;

static SOCKET: Mutex<Option<Socket>> = Mutex::new(None);

/// Opens the socket now, if taskstats may be asked and it is not open yet.
pub(crate) fn open() {
    if serves_at_all() {
        let mut socket = SOCKET.lock().unwrap_or_else(|e| e.into_inner());
        open_locked(&mut socket);
    }
}

fn open_locked(socket: &mut Option<Socket>) {
    if socket.is_none() {
        match Socket::open() {
            Ok(s) => *socket = Some(s),
            Err(_) => REFUSED.store(true, Ordering::Relaxed),
        }
    }
}

/// The name and start time of zombie `pid`, a child of this process (so its pid cannot be
/// reused while it is asked about), with its own CPU times and faults (not its reaped
/// children's: `wait4` gives those). `None` where the caller must read `/proc`.
pub(crate) fn identify(pid: i32) -> Option<ProcInfo> {
    if pid <= 0 || !serves_at_all() {
        return None;
    }
    let mut socket = SOCKET.lock().unwrap_or_else(|e| e.into_inner());
    open_locked(&mut socket);
    let before = procfs::now_ns();
    let reply = socket.as_mut()?.ask(pid);
    let after = procfs::now_ns();
    match reply {
        Ok(stats) => stats.identity(before, after, boot_offset_ns(after)),
        Err(e) => {
            if e.raw_os_error() == Some(libc::EPERM) {
                // Not served to this process (no CAP_NET_ADMIN): /proc from now on.
                REFUSED.store(true, Ordering::Relaxed);
                *socket = None;
            }
            None
        }
    }
}

/// Whether zombies are identified without `/proc` here (as far as known before the first
/// request: a refusal is remembered).
pub(crate) fn serves() -> bool {
    serves_at_all() && boot_offset_ns(procfs::now_ns()) <= CLOCKS_AGREE_NS
}

fn serves_at_all() -> bool {
    !REFUSED.load(Ordering::Relaxed) && enabled()
}

/// How far apart the boot-time and monotonic clocks are now (the time spent suspended, and
/// any difference between a time namespace's offsets of the two), given a boot-clock reading
/// just taken (`procfs::now_ns`; 0: unreadable), or `u64::MAX` if unreadable. Either way round
/// counts: offsets that happened to cancel a suspend must not pass for clocks that agree.
fn boot_offset_ns(boot_now: u64) -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) if boot_now != 0 => {
            boot_now.abs_diff(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        }
        _ => u64::MAX,
    }
}

/// The fields of one taskstats reply the engine keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stats {
    comm: String,
    /// Microseconds since the task started, at the kernel's reading.
    age_us: u64,
    rusage: Rusage,
}

impl Stats {
    /// `before` and `after`: boot-clock readings around the request (the kernel's reading of
    /// the age lies between them); `boot_offset`: how far apart the two clocks are.
    fn identity(self, before: u64, after: u64, boot_offset: u64) -> Option<ProcInfo> {
        if boot_offset > CLOCKS_AGREE_NS {
            return None;
        }
        let age_ns = self.age_us.checked_mul(1_000)?;
        // The age is truncated to a microsecond.
        let earliest = before.checked_sub(age_ns.checked_add(1_000)?)?;
        let latest = after.checked_sub(age_ns)?;
        let start_time = procfs::start_tick_between(earliest, latest)?;
        Some(ProcInfo {
            comm: Some(self.comm),
            start_time: Some(start_time),
            rusage: Some(self.rusage),
        })
    }
}

struct Socket {
    fd: OwnedFd,
    family: u16,
    seq: u32,
    /// The request being sent: kept, as the reply's buffer is, so that a request allocates
    /// nothing.
    out: Vec<u8>,
    /// Room for a `struct taskstats` several versions larger than today's 400-odd bytes; a
    /// reply cut short fails to parse, and the zombie is read from /proc.
    reply: Box<[u8; 4096]>,
}

impl Socket {
    fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_GENERIC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut socket = Socket {
            fd,
            family: GENL_ID_CTRL,
            seq: 0,
            out: Vec::new(),
            reply: Box::new([0; 4096]),
        };
        let reply = socket.request(CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0")?;
        let family = attrs(reply)
            .find(|(kind, _)| *kind == CTRL_ATTR_FAMILY_ID)
            .and_then(|(_, value)| Some(u16::from_ne_bytes(value.get(..2)?.try_into().ok()?)))
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        socket.family = family;
        // The kernel serves requests only to CAP_NET_ADMIN in the initial user namespace: asked
        // once about this process, so that a socket that would be refused is not kept.
        socket.ask(std::process::id() as i32)?;
        Ok(socket)
    }

    fn ask(&mut self, pid: i32) -> io::Result<Stats> {
        let pid = (pid as u32).to_ne_bytes();
        let reply = self.request(TASKSTATS_CMD_GET, TASKSTATS_CMD_ATTR_PID, &pid)?;
        parse_reply(reply).ok_or_else(|| io::Error::from_raw_os_error(libc::EPROTO))
    }

    /// Sends one generic-netlink request with one attribute; returns the reply's attributes.
    fn request(&mut self, cmd: u8, attr: u16, value: &[u8]) -> io::Result<&[u8]> {
        self.seq = self.seq.wrapping_add(1);
        encode(&mut self.out, self.family, self.seq, cmd, attr, value);
        // SAFETY: `out` is valid for its length; the socket is ours.
        let sent = unsafe {
            crate::syscall::send(
                self.fd.as_raw_fd(),
                self.out.as_ptr().cast(),
                self.out.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let len = loop {
            // The kernel answers within send(2): a reply not there now will not come.
            // SAFETY: `reply` is valid for its length.
            let n = unsafe {
                crate::syscall::recv(
                    self.fd.as_raw_fd(),
                    self.reply.as_mut_ptr().cast(),
                    self.reply.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if decode(&self.reply[..n as usize], self.seq)?.is_some() {
                break n as usize;
            }
            // A late reply to an earlier request.
        };
        decode(&self.reply[..len], self.seq)?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EPROTO))
    }
}

/// One request: netlink header, generic-netlink header, one attribute.
fn encode(msg: &mut Vec<u8>, family: u16, seq: u32, cmd: u8, attr: u16, value: &[u8]) {
    let attr_len = NLA_HDRLEN + value.len();
    let len = NLMSG_HDRLEN + GENL_HDRLEN + align4(attr_len);
    msg.clear();
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&family.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
    msg.extend_from_slice(&[cmd, 1, 0, 0]); // cmd, version, reserved
    msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    msg.extend_from_slice(&attr.to_ne_bytes());
    msg.extend_from_slice(value);
    msg.resize(len, 0);
}

/// The attributes of the reply to request `seq`; `Ok(None)` for a reply to another request,
/// `Err` for the kernel's error answer.
fn decode(buf: &[u8], seq: u32) -> io::Result<Option<&[u8]>> {
    let field_u32 = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
    };
    let bad = || io::Error::from_raw_os_error(libc::EPROTO);
    let len = field_u32(0).ok_or_else(bad)? as usize;
    let kind = u16::from_ne_bytes(
        buf.get(4..6)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    if field_u32(8).ok_or_else(bad)? != seq {
        return Ok(None);
    }
    let body = buf.get(NLMSG_HDRLEN..len.min(buf.len())).ok_or_else(bad)?;
    if kind == NLMSG_ERROR {
        let errno = i32::from_ne_bytes(
            body.get(..4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        );
        return Err(io::Error::from_raw_os_error(
            errno.checked_neg().unwrap_or(libc::EPROTO),
        ));
    }
    body.get(GENL_HDRLEN..).map(Some).ok_or_else(bad)
}

/// Netlink attributes, as (type, value).
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes(buf.get(..2)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(buf.get(2..4)?.try_into().ok()?) & NLA_TYPE_MASK;
        let value = buf.get(NLA_HDRLEN..len)?;
        buf = buf.get(align4(len)..).unwrap_or(&[]);
        Some((kind, value))
    })
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A `TASKSTATS_CMD_GET` reply: `AGGR_PID { PID, STATS }`.
fn parse_reply(reply: &[u8]) -> Option<Stats> {
    let (_, nest) = attrs(reply).find(|(kind, _)| *kind == TASKSTATS_TYPE_AGGR_PID)?;
    let (_, stats) = attrs(nest).find(|(kind, _)| *kind == TASKSTATS_TYPE_STATS)?;
    parse_stats(stats)
}

fn parse_stats(ts: &[u8]) -> Option<Stats> {
    if ts.len() < TS_MIN_LEN {
        return None;
    }
    let u64_at = |at: usize| u64::from_ne_bytes(ts[at..at + 8].try_into().expect("8 bytes"));
    let comm = &ts[TS_COMM..TS_COMM + TS_COMM_LEN];
    let comm = &comm[..comm.iter().position(|&b| b == 0).unwrap_or(TS_COMM_LEN)];
    Some(Stats {
        // /proc shows the same bytes; a name that is not UTF-8 is shown as /proc's parser
        // would refuse it: such a zombie is read from /proc instead.
        comm: std::str::from_utf8(comm).ok()?.to_string(),
        age_us: u64_at(TS_ETIME),
        rusage: Rusage {
            user_cpu_us: u64_at(TS_UTIME),
            system_cpu_us: u64_at(TS_STIME),
            minor_faults: u64_at(TS_MINFLT),
            major_faults: u64_at(TS_MAJFLT),
            ..Rusage::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_bytes(comm: &[u8], age_us: u64) -> Vec<u8> {
        let mut ts = vec![0u8; 416];
        ts[..2].copy_from_slice(&13u16.to_ne_bytes());
        ts[TS_COMM..TS_COMM + comm.len()].copy_from_slice(comm);
        ts[TS_ETIME..TS_ETIME + 8].copy_from_slice(&age_us.to_ne_bytes());
        ts[TS_UTIME..TS_UTIME + 8].copy_from_slice(&7u64.to_ne_bytes());
        ts
    }

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = ((NLA_HDRLEN + value.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize(align4(a.len()), 0);
        a
    }

    #[test]
    fn a_reply_is_parsed_through_its_nest() {
        let mut nest = attr(1, &42u32.to_ne_bytes());
        nest.extend(attr(
            TASKSTATS_TYPE_STATS,
            &stats_bytes(b"my (odd) name", 1_500),
        ));
        let reply = attr(TASKSTATS_TYPE_AGGR_PID, &nest);
        let stats = parse_reply(&reply).expect("parsed");
        assert_eq!(stats.comm, "my (odd) name");
        assert_eq!(stats.age_us, 1_500);
        assert_eq!(stats.rusage.user_cpu_us, 7);
        assert!(parse_reply(&attr(TASKSTATS_TYPE_AGGR_PID, &attr(1, &[0; 4]))).is_none());
        assert!(
            parse_stats(&[0u8; 100]).is_none(),
            "a short struct is refused"
        );
    }

    #[test]
    fn the_age_gives_a_start_tick_only_when_it_pins_one() {
        let tick = 1_000_000_000 / procfs::ticks_per_second();
        let stats = |age_us| Stats {
            comm: "x".into(),
            age_us,
            rusage: Rusage::default(),
        };
        // Started 5 ticks and a half ago, asked in a 3 µs window.
        let now = 1_000 * tick;
        let age_us = (5 * tick + tick / 2) / 1_000;
        let info = stats(age_us)
            .identity(now, now + 3_000, 0)
            .expect("one tick");
        assert_eq!(info.start_time, Some(994));
        // Started right at a tick's edge: either side may be the right one.
        let edge = (5 * tick) / 1_000;
        assert!(stats(edge).identity(now, now + 3_000, 0).is_none());
        // The clocks disagree (a suspend): /proc it is.
        assert!(stats(age_us)
            .identity(now, now + 3_000, 2 * CLOCKS_AGREE_NS)
            .is_none());
        // An age beyond the clock: nonsense, refused.
        assert!(stats(u64::MAX / 1_000).identity(now, now, 0).is_none());
    }

    #[test]
    fn requests_and_errors_are_framed_as_netlink_wants() {
        let mut msg = vec![0xff; 64]; // whatever it held before
        encode(
            &mut msg,
            31,
            9,
            TASKSTATS_CMD_GET,
            TASKSTATS_CMD_ATTR_PID,
            &5u32.to_ne_bytes(),
        );
        assert_eq!(msg.len(), 28);
        assert_eq!(u32::from_ne_bytes(msg[..4].try_into().unwrap()), 28);
        assert_eq!(u16::from_ne_bytes(msg[4..6].try_into().unwrap()), 31);
        assert_eq!(msg[16], TASKSTATS_CMD_GET);
        let mut err = Vec::new();
        encode(&mut err, NLMSG_ERROR, 9, 0, 0, &[]);
        err.truncate(NLMSG_HDRLEN);
        err.extend_from_slice(&(-libc::ESRCH).to_ne_bytes());
        let len = err.len() as u32;
        err[..4].copy_from_slice(&len.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        let e = decode(&err, 9).expect_err("an error answer");
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
        assert!(decode(&err, 8).expect("another request's").is_none());
    }
}
