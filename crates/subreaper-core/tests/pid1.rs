//! The engine as real PID 1 of a PID namespace: every orphan of the namespace comes to it.
//!
//! The test runs this very test binary again under `unshare --pid --fork --mount-proc`, where
//! it is PID 1 (with SUBREAPER_PID1_PROBE=1 it plays the probe instead of the launcher). The
//! probe asserts what it sees and prints one result line, which the launcher checks.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use subreaper_core::{adopts_orphans, is_init, is_subreaper, ReapedBy, Termination};

const PROBE_ENV: &str = "SUBREAPER_PID1_PROBE";
const RESULT: &str = "PID1_PROBE_RESULT";

#[test]
fn reaps_orphans_as_pid1_in_a_pid_namespace() {
    if std::env::var_os(PROBE_ENV).is_some() {
        probe();
    } else {
        launch();
    }
}

fn launch() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(&exe)
        .args([
            "--exact",
            "reaps_orphans_as_pid1_in_a_pid_namespace",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROBE_ENV, "1")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && !stdout.contains(RESULT)
        && stderr.contains("unshare failed")
        && (stderr.contains("Operation not permitted") || stderr.contains("Permission denied"))
    {
        eprintln!(
            "SKIPPED: cannot create a PID namespace here (needs root or user namespaces): {}",
            stderr.trim()
        );
        return;
    }
    let line = stdout
        .lines()
        .find_map(|l| l.find(RESULT).map(|at| &l[at..]))
        .unwrap_or_else(|| {
            panic!(
                "the probe printed no result ({}):\n{stdout}\n{stderr}",
                out.status
            )
        });
    eprintln!("{line}");
    assert!(
        out.status.success(),
        "probe failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(line.contains(" ok "), "{line}");
}

fn probe() {
    assert!(is_init(), "the probe is not PID 1: {}", std::process::id());
    assert!(adopts_orphans());
    assert!(!is_subreaper().unwrap(), "PID 1 needs no subreaper mode");
    let r = common::sole_reaper();
    let sub = r.subscribe(Default::default());

    // Shells that exit at once, leaving background jobs (and one a job of an inner shell)
    // that only PID 1 can reap: they exit when the gate opens, after every shell is gone.
    let mut gate = Gate::new();
    let script = format!("exec 3<&0; {GATED_JOB}; {GATED_JOB}; sh -c '{GATED_JOB}'; exit 0");
    let mut orphans = Vec::new();
    for _ in 0..10 {
        let (mut child, rx) = r
            .start_command(
                Command::new("sh")
                    .args(["-c", &script])
                    .stdin(gate.stdin())
                    .stdout(Stdio::piped()),
            )
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..3 {
            let line = lines.next().unwrap().unwrap();
            let (pid, ticks) = line.trim().split_once(' ').expect("pid and start ticks");
            let pid: i32 = pid.parse().unwrap();
            Proc::started_at_ticks(pid, ticks.parse().unwrap());
            orphans.push(pid);
        }
        assert_eq!(rx.wait().termination, Termination::Exited(0));
    }
    for pid in &orphans {
        assert_eq!(stat(*pid).map(|(_, ppid)| ppid), Some(1), "orphan {pid}");
    }
    gate.release();
    let set = procs(&orphans);
    assert_eq!(set.len(), 30);
    let got = collect(&sub, &set, Duration::from_secs(10));
    assert_once_each_in_order(&got, &set);
    for e in &got {
        assert_eq!(e.termination, Termination::Exited(0));
        assert_eq!(e.comm.as_deref(), Some("sleep"));
        assert_eq!(e.reaped_by, ReapedBy::Reaper);
    }
    assert_no_more(&sub, &set, Duration::from_millis(200));
    // Nothing is left in the namespace but this process: no zombie, no stray.
    let others: Vec<(i32, Option<(char, i32)>)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| *pid != 1)
        .map(|pid| (pid, stat(pid)))
        .collect();
    assert!(others.is_empty(), "left in the namespace: {others:?}");
    // Every exit in the namespace was ours to record: 10 shells and 30 orphans.
    assert_eq!(r.exits_recorded(), 40);
    println!(
        "\n{RESULT} ok orphans={} reaped={} zombies=0 exits_recorded={}",
        set.len(),
        got.len(),
        r.exits_recorded()
    );
}
