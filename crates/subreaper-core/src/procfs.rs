//! What `/proc` says about processes: one parser for `/proc/<pid>/stat`, the per-thread children
//! lists, and the clock that start times are counted in.
//!
//! Reading `/proc/<pid>/stat` is the costliest step of recording an exit (the kernel formats
//! the whole line), so it is read with one `read` into a stack buffer: no `statx`, no growing
//! buffer, no second `read`.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The fields of `/proc/<pid>/stat` this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    /// A zombie's own counts plus those of the children it reaped, as wait4 reports them.
    pub minflt: u64,
    pub majflt: u64,
    pub utime: u64,
    pub stime: u64,
    /// Clock ticks since boot: with the pid, it names one process even after the pid is reused.
    pub start_time: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name may contain spaces and parentheses,
/// so it is the text between the first `(` and the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    // `rest[0]` is field 3 (state) of proc(5); start time is field 22.
    let rest: Vec<&str> = text
        .get(close + 1..)?
        .split_ascii_whitespace()
        .take(20)
        .collect();
    let field = |n: usize| rest.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    let state = rest.first()?.chars().next()?;
    let ppid: i32 = rest.get(1)?.parse().ok()?;
    Some(Stat {
        comm,
        state,
        ppid,
        minflt: field(10)? + field(11)?,
        majflt: field(12)? + field(13)?,
        utime: field(14)? + field(16)?,
        stime: field(15)? + field(17)?,
        start_time: field(22)?,
    })
}

/// Reads `path` with a single `read` into `buf`; returns the bytes read.
fn read_once<'a>(path: &str, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let mut file = File::open(path).ok()?;
    let n = file.read(buf).ok()?;
    Some(&buf[..n])
}

/// One `pread` at offset 0 of a `/proc` file kept open: the kernel formats it afresh.
fn read_again<'a>(file: &File, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    use std::os::unix::fs::FileExt;
    let n = file.read_at(buf, 0).ok()?;
    Some(&buf[..n])
}

/// `/proc/<pid>/stat`, or `None` once the process is gone (reaped).
pub fn read_stat(pid: i32) -> Option<Stat> {
    let mut buf = [0u8; 1024];
    let path = format!("/proc/{pid}/stat");
    let bytes = read_once(&path, &mut buf)?;
    parse_stat(std::str::from_utf8(bytes).ok()?)
}

/// The start time of `pid` in clock ticks since boot.
pub fn start_time(pid: i32) -> Option<u64> {
    read_stat(pid).map(|s| s.start_time)
}

/// Clock ticks per second (`USER_HZ`), the unit of start and CPU times in `/proc`.
pub fn ticks_per_second() -> u64 {
    // Fixed for the life of the kernel; asked for several times an exit, so asked once.
    static TICKS: AtomicU64 = AtomicU64::new(0);
    match TICKS.load(Ordering::Relaxed) {
        0 => {
            let ticks = match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
                Ok(Some(t)) if t > 0 => t as u64,
                _ => 100,
            };
            TICKS.store(ticks, Ordering::Relaxed);
            ticks
        }
        ticks => ticks,
    }
}

/// Time since boot, on the clock `/proc` start times are counted on.
fn since_boot() -> Option<Duration> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    Some(Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32))
}

/// The current time in start-time clock ticks: a process started before this tick has a start
/// time strictly below it.
pub fn now_ticks() -> u64 {
    ns_to_ticks(now_ns())
}

/// Nanoseconds since boot on the clock start times are counted on (0 if unreadable).
pub fn now_ns() -> u64 {
    since_boot().map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The start-time tick that `ns` since boot falls in (the kernel's `nsec_to_clock_t`).
pub fn ns_to_ticks(ns: u64) -> u64 {
    ns / (1_000_000_000 / ticks_per_second())
}

/// The start time of a process the kernel created between `before` and `after` (ns since
/// boot, read before and after): known without `/proc` when both fall in one tick, with a
/// margin either side for the two readings of the clock.
pub fn start_tick_between(before: u64, after: u64) -> Option<u64> {
    const MARGIN_NS: u64 = 10_000;
    if before == 0 || after < before {
        return None;
    }
    let tick = ns_to_ticks(before.saturating_sub(MARGIN_NS));
    (tick == ns_to_ticks(after + MARGIN_NS)).then_some(tick)
}

/// Converts a start time (clock ticks since boot) to wall-clock time, given the wall-clock time
/// now (read just before: an exit's own timestamp).
pub fn started_at(start_ticks: u64, now: SystemTime) -> Option<SystemTime> {
    let ticks = ticks_per_second();
    let started = Duration::from_nanos(start_ticks.saturating_mul(1_000_000_000 / ticks));
    let age = since_boot()?.checked_sub(started)?;
    now.checked_sub(age)
}

/// CPU time in microseconds from clock ticks.
pub fn ticks_to_us(ticks: u64) -> u64 {
    ticks * 1_000_000 / ticks_per_second()
}

fn parse_pids(bytes: &[u8]) -> Vec<i32> {
    std::str::from_utf8(bytes)
        .unwrap_or("")
        .split_ascii_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The children of one thread of this process (`/proc/self/task/<tid>/children`), oldest
/// first. `None` where the kernel has no per-thread children lists (`CONFIG_PROC_CHILDREN`)
/// or the thread is gone.
pub fn thread_children(tid: i32) -> Option<Vec<i32>> {
    read_list(&format!("/proc/self/task/{tid}/children"))
}

/// The main thread's children list, opened once by [`keep_main_children_open`] with the main
/// thread's id. The engine looks at it after nearly every exit (the drain's first zombie,
/// whether every child's owner reports, the SIGCHLD hint on the event loop's thread), and
/// opening it each time cost an `openat` (a path walk through `/proc`) and a `close` beside
/// the `read`.
static MAIN_CHILDREN: OnceLock<Option<(i32, File)>> = OnceLock::new();

/// Keeps the main thread's children list open for [`short_thread_children`] (called before
/// the engine's threads start, with its other long-lived descriptors).
pub fn keep_main_children_open() {
    MAIN_CHILDREN.get_or_init(|| {
        let tid = main_thread();
        File::open(format!("/proc/self/task/{tid}/children"))
            .ok()
            .map(|file| (tid, file))
    });
}

/// The children of thread `tid` from one `read` of a page: `None` if the list does not fit
/// (or is unreadable). The kernel formats only what it hands out, so a long list costs no more.
/// The main thread's list is read from the descriptor kept open, with one `pread` at offset 0,
/// which the kernel formats afresh. A forked child of this process has another main thread:
/// it opens the path like for any other thread.
pub fn short_thread_children(tid: i32) -> Option<Vec<i32>> {
    let mut buf = [0u8; 4096];
    let bytes = match MAIN_CHILDREN.get() {
        Some(Some((main, file))) if *main == tid => read_again(file, &mut buf)?,
        _ => read_once(&format!("/proc/self/task/{tid}/children"), &mut buf)?,
    };
    (bytes.len() < 4096).then(|| parse_pids(bytes))
}

/// The children of the calling thread: what a fork just made is at the end of this list.
pub fn own_thread_children() -> Option<Vec<i32>> {
    read_list("/proc/thread-self/children")
}

/// A pid list, read to its end (a short read is not taken for the end: a pid missed at the
/// tail would be a child taken for an orphan). Starts in a stack buffer, so that the usual
/// short list costs `openat`, two `read`s and `close`, without `statx` or `lseek`.
fn read_list(path: &str) -> Option<Vec<i32>> {
    let mut file = File::open(path).ok()?;
    let mut buf = [0u8; 2048];
    let mut filled = 0;
    loop {
        match file.read(&mut buf[filled..]) {
            Ok(0) => return Some(parse_pids(&buf[..filled])),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
        if filled == buf.len() {
            // Long (every adopted zombie of a busy init): the rest into a growing buffer.
            let mut bytes = buf.to_vec();
            file.read_to_end(&mut bytes).ok()?;
            return Some(parse_pids(&bytes));
        }
    }
}

/// The last pid the kernel allocated in this PID namespace (`/proc/sys/kernel/ns_last_pid`).
/// The file stays open (one `pread` per look: it is read twice around every fork).
pub fn last_pid() -> Option<i32> {
    static FILE: OnceLock<Option<File>> = OnceLock::new();
    let file = FILE
        .get_or_init(|| File::open("/proc/sys/kernel/ns_last_pid").ok())
        .as_ref()?;
    let mut buf = [0u8; 32];
    std::str::from_utf8(read_again(file, &mut buf)?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `/proc/<pid>/comm`: the command name alone (cheaper for the kernel than the `stat` line).
pub fn read_comm(pid: i32) -> Option<String> {
    let mut buf = [0u8; 64];
    let bytes = read_once(&format!("/proc/{pid}/comm"), &mut buf)?;
    let text = std::str::from_utf8(bytes).ok()?;
    Some(text.strip_suffix('\n').unwrap_or(text).to_string())
}

/// Whether `pid` was allocated after `before` and no later than `after`, pids being handed
/// out in increasing order and wrapping around.
pub fn allocated_between(pid: i32, before: i32, after: i32) -> bool {
    if before <= after {
        before < pid && pid <= after
    } else {
        pid > before || pid <= after
    }
}

/// Whether this kernel keeps per-thread children lists.
pub fn has_children_lists() -> bool {
    std::path::Path::new("/proc/thread-self/children").exists()
}

/// The threads of this process.
pub fn threads() -> Vec<i32> {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Whether thread `tid` of this process is still alive.
pub fn thread_alive(tid: i32) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// The pid of this process's main thread (its thread-group leader): where adopted orphans and
/// the children of ended threads are listed.
pub fn main_thread() -> i32 {
    std::process::id() as i32
}

/// The calling thread's id.
pub fn current_thread() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// Whether `/proc` is this process's own PID namespace's (it is not inside `unshare --pid`
/// without `--mount-proc`, where it is the host's).
pub fn is_own_namespace() -> bool {
    read_stat_self_pid() == Some(std::process::id() as i32)
}

fn read_stat_self_pid() -> Option<i32> {
    let mut buf = [0u8; 1024];
    let bytes = read_once("/proc/self/stat", &mut buf)?;
    std::str::from_utf8(bytes)
        .ok()?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "42 (a) b (c)) Z 7 1 1 0 -1 4227148 10 1 2 3 4 5 6 7 20 0 1 0 999 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.comm, "a) b (c)");
        assert_eq!(stat.state, 'Z');
        assert_eq!(stat.ppid, 7);
        assert_eq!(stat.minflt, 11);
        assert_eq!(stat.majflt, 5);
        assert_eq!(stat.utime, 4 + 6);
        assert_eq!(stat.stime, 5 + 7);
        assert_eq!(stat.start_time, 999);
    }

    #[test]
    fn refuses_a_truncated_line() {
        assert_eq!(parse_stat("42 (sh) S 7 1 1 0"), None);
    }

    #[test]
    fn pids_allocated_in_a_window_wrap_around() {
        assert!(allocated_between(105, 100, 110));
        assert!(!allocated_between(100, 100, 110));
        assert!(!allocated_between(99, 100, 110));
        // pid_max reached between the two readings.
        assert!(allocated_between(32_760, 32_750, 20));
        assert!(allocated_between(5, 32_750, 20));
        assert!(!allocated_between(300, 32_750, 20));
    }

    #[test]
    fn a_start_time_is_known_from_the_clock_only_within_one_tick() {
        let tick = 1_000_000_000 / ticks_per_second();
        // Well inside one tick: that tick.
        assert_eq!(
            start_tick_between(5 * tick + 100_000, 5 * tick + 900_000),
            Some(5)
        );
        // Across a tick boundary, or too close to one for the clock readings: unknown.
        assert_eq!(start_tick_between(5 * tick - 1_000, 5 * tick + 1_000), None);
        assert_eq!(start_tick_between(5 * tick + 1_000, 5 * tick + 2_000), None);
        assert_eq!(start_tick_between(6 * tick - 2_000, 6 * tick - 1_000), None);
        // No clock, or readings out of order.
        assert_eq!(start_tick_between(0, 10), None);
        assert_eq!(
            start_tick_between(5 * tick + 900_000, 5 * tick + 100_000),
            None
        );
    }

    #[test]
    fn a_long_pid_list_is_read_to_its_end() {
        let pids: Vec<i32> = (1..3000).map(|i| i * 7).collect();
        let text: String = pids.iter().map(|p| format!("{p} ")).collect();
        assert!(text.len() > 2048);
        let path = std::env::temp_dir().join(format!("subreaper-pids-{}", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let read = read_list(path.to_str().unwrap());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read, Some(pids));
        assert_eq!(read_list("/nonexistent/children"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = read_stat(std::process::id() as i32).unwrap();
        assert!("RS".contains(me.state));
        assert!(me.start_time <= now_ticks());
        assert!(is_own_namespace());
        assert!(threads().contains(&current_thread()));
        assert_eq!(read_comm(std::process::id() as i32), Some(me.comm));
        assert!(last_pid().is_some_and(|p| p > 0));
    }

    #[test]
    fn a_childs_list_entry_names_it() {
        if !has_children_lists() {
            return;
        }
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(own_thread_children().unwrap().contains(&pid));
        assert!(
            !thread_children(main_thread())
                .unwrap_or_default()
                .contains(&pid)
                || current_thread() == main_thread()
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
