//! The report: every process that exited under the init, as JSON or as a table.
//!
//! Numbers are integers (µs of CPU, KiB, ms since the Unix epoch, ms of lifetime): no float
//! noise. Arguments that are not UTF-8 are shown with U+FFFD in place of the bad bytes.

use std::ffi::OsString;
use std::fmt::Write;

use crate::exits::ExitRecord;
use crate::signals;

/// What the init did to a leftover after the command exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Terminated,
    Killed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Terminated => "terminated",
            Action::Killed => "killed",
        }
    }
}

/// One row of the report.
pub struct Row<'a> {
    pub exit: &'a ExitRecord,
    pub main: bool,
    pub leftover: bool,
    pub action: Option<Action>,
}

pub struct Summary {
    pub exited: usize,
    pub leftovers: usize,
    pub terminated: usize,
    pub killed: usize,
}

/// The version of the JSON report's layout (docs/cli.md describes it): raised when a field
/// changes meaning or goes away; new fields may appear within a version.
pub const SCHEMA: u32 = 1;

pub struct Report<'a> {
    pub command: &'a [OsString],
    pub main: &'a ExitRecord,
    /// What the init exits with: the command's status, or 0 when `-e` expected it.
    pub exit_status: i32,
    pub pid1: bool,
    pub rows: Vec<Row<'a>>,
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json_string(out, s),
        None => out.push_str("null"),
    }
}

fn json_opt_num(out: &mut String, n: Option<impl std::fmt::Display>) {
    match n {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}

/// `exit 3`, `SIGTERM`, `SIGSEGV (core)`.
fn status_text(e: &ExitRecord) -> String {
    match e.termination.signal() {
        Some(sig) if e.termination.core_dumped() => format!("{} (core)", signals::name(sig)),
        Some(sig) => signals::name(sig),
        None => format!("exit {}", e.termination.code().unwrap_or(-1)),
    }
}

fn ms_text(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) if ms < 60_000 => format!("{:.2}s", ms as f64 / 1000.0),
        Some(ms) => format!("{:.1}m", ms as f64 / 60_000.0),
    }
}

/// The command as a shell would take it back: each word in single quotes.
pub fn quoted(command: &[OsString]) -> String {
    command
        .iter()
        .map(|w| format!("'{}'", w.to_string_lossy().replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Report<'_> {
    pub fn summary(&self) -> Summary {
        let count = |f: &dyn Fn(&Row) -> bool| self.rows.iter().filter(|r| f(r)).count();
        Summary {
            exited: self.rows.len(),
            leftovers: count(&|r| r.leftover),
            terminated: count(&|r| r.action == Some(Action::Terminated)),
            killed: count(&|r| r.action == Some(Action::Killed)),
        }
    }

    pub fn json(&self) -> String {
        let mut o = String::with_capacity(256 + self.rows.len() * 400);
        let t = self.main.termination;
        let _ = write!(o, "{{\n  \"schema\": {SCHEMA},\n  \"command\": [");
        for (i, word) in self.command.iter().enumerate() {
            o.push_str(if i == 0 { "\n    " } else { ",\n    " });
            json_string(&mut o, &word.to_string_lossy());
        }
        o.push_str("\n  ],\n");
        let _ = write!(
            o,
            "  \"pid\": {},\n  \"status\": {},\n  \"exitStatus\": {},\n  \"code\": ",
            self.main.pid,
            t.status(),
            self.exit_status
        );
        json_opt_num(&mut o, t.code());
        o.push_str(",\n  \"signal\": ");
        json_opt_str(&mut o, t.signal().map(signals::name).as_deref());
        let _ = write!(o, ",\n  \"pid1\": {},\n  \"processes\": [", self.pid1);
        for (i, row) in self.rows.iter().enumerate() {
            o.push_str(if i == 0 { "\n" } else { ",\n" });
            self.json_row(&mut o, row);
        }
        o.push_str(if self.rows.is_empty() {
            "],\n"
        } else {
            "\n  ],\n"
        });
        let s = self.summary();
        let _ = write!(
            o,
            "  \"summary\": {{\n    \"exited\": {},\n    \"leftovers\": {},\n    \"terminated\": {},\n    \"killed\": {}\n  }}\n}}\n",
            s.exited, s.leftovers, s.terminated, s.killed
        );
        o
    }

    fn json_row(&self, o: &mut String, row: &Row) {
        let e = row.exit;
        let t = e.termination;
        let _ = write!(o, "    {{\n      \"pid\": {},\n      \"comm\": ", e.pid);
        json_opt_str(o, e.comm.as_deref());
        let _ = write!(
            o,
            ",\n      \"main\": {},\n      \"leftover\": {},\n      \"action\": ",
            row.main, row.leftover
        );
        json_opt_str(o, row.action.map(Action::as_str));
        let _ = write!(o, ",\n      \"status\": {},\n      \"code\": ", t.status());
        json_opt_num(o, t.code());
        o.push_str(",\n      \"signal\": ");
        json_opt_str(o, t.signal().map(signals::name).as_deref());
        let _ = write!(
            o,
            ",\n      \"coreDumped\": {},\n      \"userCPUTimeUs\": {},\n      \"systemCPUTimeUs\": {},\n      \"maxRSSKiB\": ",
            t.core_dumped(),
            e.rusage.user_cpu_us,
            e.rusage.system_cpu_us
        );
        json_opt_num(o, e.rusage.max_rss_kib);
        o.push_str(",\n      \"startTime\": ");
        json_opt_num(o, e.start_ms());
        let _ = write!(
            o,
            ",\n      \"exitTime\": {},\n      \"lifetimeMs\": ",
            e.exit_ms
        );
        json_opt_num(o, e.lifetime_ms);
        o.push_str("\n    }");
    }

    pub fn table(&self) -> String {
        const HEADER: [&str; 7] = [
            "PID", "COMMAND", "STATUS", "CPU", "MAX RSS", "LIFETIME", "NOTE",
        ];
        let rows: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                let e = r.exit;
                let cpu_ms = ((e.rusage.user_cpu_us + e.rusage.system_cpu_us) / 1000) as i64;
                let rss = match e.rusage.max_rss_kib {
                    None => "-".into(),
                    Some(k) if k >= 10240 => format!("{:.1}M", k as f64 / 1024.0),
                    Some(k) => format!("{k}K"),
                };
                let note = match (r.main, r.leftover, r.action) {
                    (true, _, _) => "main".to_string(),
                    (_, true, Some(a)) => format!("leftover, {}", a.as_str()),
                    (_, true, None) => "leftover".to_string(),
                    _ => String::new(),
                };
                [
                    e.pid.to_string(),
                    e.comm.clone().unwrap_or_else(|| "?".into()),
                    status_text(e),
                    ms_text(Some(cpu_ms)),
                    rss,
                    ms_text(e.lifetime_ms),
                    note,
                ]
            })
            .collect();
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    l.push_str("  ");
                }
                let _ = write!(l, "{cell:<w$}", w = widths[i]);
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(&HEADER.map(String::from));
        for row in &rows {
            line(row);
        }
        out.push_str(&self.summary_line());
        out
    }

    /// `subreaper: 'sh' 'x.sh' exited with code 4; 7 processes exited under subreaper, ...`
    pub fn summary_line(&self) -> String {
        let s = self.summary();
        let t = self.main.termination;
        let how = match t.signal() {
            Some(sig) if t.core_dumped() => {
                format!("was killed by {} (core dumped)", signals::name(sig))
            }
            Some(sig) => format!("was killed by {}", signals::name(sig)),
            None => format!("exited with code {}", t.code().unwrap_or(-1)),
        };
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let left = if s.leftovers == 0 {
            "no leftovers".to_string()
        } else {
            format!(
                "{} ({} terminated, {} killed)",
                plural(s.leftovers, "leftover", "leftovers"),
                s.terminated,
                s.killed
            )
        };
        format!(
            "subreaper: {} {how}; {} exited under subreaper, {left}\n",
            quoted(self.command),
            plural(s.exited, "process", "processes")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subreaper_core::exit::{Rusage, Termination};

    fn exit(pid: i32, termination: Termination) -> ExitRecord {
        ExitRecord {
            pid,
            termination,
            rusage: Rusage {
                user_cpu_us: 1500,
                max_rss_kib: Some(1432),
                ..Rusage::default()
            },
            comm: Some("sh".into()),
            start_ticks: Some(7),
            exit_ms: 1_796_114_301_404,
            lifetime_ms: Some(10),
        }
    }

    #[test]
    fn json_has_integers_and_the_table_quotes_the_command() {
        let main = exit(2, Termination::Exited(4));
        let left = exit(
            3,
            Termination::Signaled {
                signal: libc::SIGTERM,
                core_dumped: false,
            },
        );
        let command = vec![OsString::from("sh"), OsString::from("it's.sh")];
        let report = Report {
            command: &command,
            main: &main,
            exit_status: 4,
            pid1: false,
            rows: vec![
                Row {
                    exit: &main,
                    main: true,
                    leftover: false,
                    action: None,
                },
                Row {
                    exit: &left,
                    main: false,
                    leftover: true,
                    action: Some(Action::Terminated),
                },
            ],
        };
        let json = report.json();
        assert!(json.contains("\"startTime\": 1796114301394,"), "{json}");
        assert!(json.contains("\"lifetimeMs\": 10\n"), "{json}");
        assert!(json.starts_with("{\n  \"schema\": 1,\n"), "{json}");
        assert!(json.contains("\"exitStatus\": 4,"), "{json}");
        assert!(json.contains("\"signal\": \"SIGTERM\""), "{json}");
        // No fractional number anywhere (the only dot is in the file name).
        assert_eq!(json.matches('.').count(), 1, "{json}");
        let table = report.table();
        assert_eq!(
            table.lines().last().unwrap(),
            r"subreaper: 'sh' 'it'\''s.sh' exited with code 4; 2 processes exited under subreaper, 1 leftover (1 terminated, 0 killed)"
        );
        assert!(table.contains("leftover, terminated"), "{table}");
    }
}
