//! The command line: options first, then the command and its arguments, kept as raw bytes.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

pub const USAGE: &str = "Usage: subreaper [options] [--] command [args...]

Runs command as a child, as its init: reaps every orphan adopted while it runs, forwards
signals to it, terminates what it left behind, and exits with its status (code, or 128 + signal).

Options:
  -g, --group             forward signals to the command's whole process group
                          (the command then leads a process group of its own, and gets
                          the terminal when subreaper has it in the foreground)
      --grace DURATION    time leftovers get between SIGTERM and SIGKILL (default 5s;
                          e.g. 500ms, 2s, 1m; a bare number is seconds)
  -w, --wait-leftovers    wait for leftover processes to exit instead of terminating them
      --report[=FORMAT]   print every process that exited under subreaper to stderr at the
                          end: FORMAT is table (default) or json
      --report-file PATH  write the report as JSON to PATH
  -h, --help              show this help
  -V, --version           show the version

Exit status: the command's status; 127 if it was not found, 126 if it could not be run,
2 for a usage error.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
}

#[derive(Debug)]
pub struct Options {
    pub group: bool,
    pub grace: Duration,
    pub wait_leftovers: bool,
    pub report: Option<ReportFormat>,
    pub report_file: Option<OsString>,
    /// The command and its arguments, byte for byte as given.
    pub command: Vec<OsString>,
}

#[derive(Debug)]
pub enum Parsed {
    Run(Options),
    Help,
    Version,
}

/// What was wrong with the command line (printed before the usage; exit status 2).
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Parses a duration: a number with `ms`, `s` or `m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, UsageError> {
    let bad = || {
        UsageError(format!(
            "bad duration {text:?}: use a number with ms, s or m (e.g. 500ms, 5s, 1m)"
        ))
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale = match unit {
        "ms" => 1.0,
        "" | "s" => 1000.0,
        "m" => 60_000.0,
        _ => return Err(bad()),
    };
    // Digits, optionally one dot followed by digits.
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return Err(bad());
    }
    let ms = number.parse::<f64>().map_err(|_| bad())? * scale;
    if !ms.is_finite() || ms > f64::from(i32::MAX) {
        return Err(UsageError(format!("duration {text:?} is too long")));
    }
    Ok(Duration::from_millis(ms.round() as u64))
}

/// Parses the arguments after the program name.
pub fn parse(argv: &[OsString]) -> Result<Parsed, UsageError> {
    let mut opts = Options {
        group: false,
        grace: Duration::from_secs(5),
        wait_leftovers: false,
        report: None,
        report_file: None,
        command: Vec::new(),
    };
    let mut i = 0;
    while i < argv.len() {
        let raw = argv[i].as_os_str();
        if raw == "--" {
            i += 1;
            break;
        }
        let bytes = raw.as_encoded_bytes();
        if !bytes.starts_with(b"-") || raw == "-" {
            break;
        }
        let Some(arg) = raw.to_str() else {
            return Err(UsageError(format!(
                "unknown option {}",
                raw.to_string_lossy()
            )));
        };
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if arg.starts_with("--") => (name, Some(value)),
            _ => (arg, None),
        };
        // The value of an option: after `=`, or the next argument.
        let mut value = |name: &str| -> Result<OsString, UsageError> {
            if let Some(v) = inline {
                return Ok(v.into());
            }
            i += 1;
            argv.get(i)
                .cloned()
                .ok_or_else(|| UsageError(format!("{name} needs a value")))
        };
        match name {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "-g" | "--group" => opts.group = true,
            "-w" | "--wait-leftovers" => opts.wait_leftovers = true,
            "--grace" => {
                let v = value("--grace")?;
                opts.grace = parse_duration(&v.to_string_lossy())?;
            }
            "--report" => {
                opts.report = Some(match inline.unwrap_or("table") {
                    "table" => ReportFormat::Table,
                    "json" => ReportFormat::Json,
                    other => {
                        return Err(UsageError(format!(
                            "unknown report format {other:?}: use --report, --report=table or --report=json"
                        )))
                    }
                })
            }
            "--report-file" => opts.report_file = Some(value("--report-file")?),
            _ => return Err(UsageError(format!("unknown option {arg}"))),
        }
        i += 1;
    }
    match argv.get(i) {
        Some(command) if !command.is_empty() => {
            opts.command = argv[i..].to_vec();
            Ok(Parsed::Run(opts))
        }
        _ => Err(UsageError("no command given".into())),
    }
}

/// Whether `command` names a file directly (has a slash) rather than a name to look up in PATH.
pub fn is_path(command: &OsStr) -> bool {
    command.as_encoded_bytes().contains(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn run(list: &[&str]) -> Options {
        match parse(&args(list)).unwrap() {
            Parsed::Run(o) => o,
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        for bad in ["", "abc", "5x", "1.", ".5", "-1", "1e3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_duration("100000m").unwrap_err().0,
            "duration \"100000m\" is too long"
        );
    }

    #[test]
    fn options_then_command() {
        let o = run(&["-g", "--grace=2s", "-w", "--report=json", "cmd", "-g", "x"]);
        assert!(o.group && o.wait_leftovers);
        assert_eq!(o.grace, Duration::from_secs(2));
        assert_eq!(o.report, Some(ReportFormat::Json));
        assert_eq!(o.command, args(&["cmd", "-g", "x"]));
        let o = run(&["--report", "--report-file", "f", "--", "-cmd"]);
        assert_eq!(o.report, Some(ReportFormat::Table));
        assert_eq!(o.report_file, Some("f".into()));
        assert_eq!(o.command, args(&["-cmd"]));
    }

    #[test]
    fn usage_errors() {
        let err = |l: &[&str]| parse(&args(l)).unwrap_err().0;
        assert_eq!(err(&[]), "no command given");
        assert_eq!(err(&["--"]), "no command given");
        assert_eq!(err(&["--bogus", "x"]), "unknown option --bogus");
        assert_eq!(err(&["--grace"]), "--grace needs a value");
        assert!(err(&["--report=xml", "x"]).starts_with("unknown report format \"xml\""));
    }
}
