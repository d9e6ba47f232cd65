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
  -c, --single-child      forward signals to the command only (the default; undoes -g)
      --grace DURATION    time leftovers get between SIGTERM and SIGKILL (default 5s;
                          e.g. 500ms, 2s, 1m; a bare number is seconds)
      --wait-leftovers    wait for leftover processes to exit instead of terminating them
  -e, --expect-status CODE
                          exit 0 when the command's status is CODE (0-255; e.g. 143 for
                          a death by SIGTERM); repeatable
  -r, --rewrite S:R       forward signal S as signal R (numbers or names, e.g. 15:3 or
                          TERM:QUIT); R = 0 drops S; repeatable
  -p, --parent-death-signal SIGNAL
                          get SIGNAL (forwarded like any other) when the parent exits
  -s, --subreaper         accepted for tini: subreaper is always a child subreaper
  -w, --warn-on-reap      print each process reaped other than the command to stderr
  -v, --verbose           print what the init does to stderr (twice: every reaped process)
      --report[=FORMAT]   print every process that exited under subreaper to stderr at the
                          end: FORMAT is table (default) or json
      --report-file PATH  write the report as JSON to PATH
  -h, --help              show this help
  -V, --version           show the version

Environment (read as tini and dumb-init read it; passed on to the command unchanged):
  TINI_KILL_PROCESS_GROUP  set: as -g        DUMB_INIT_SETSID=0  as -c
  TINI_VERBOSITY=N         as N-1 times -v   DUMB_INIT_DEBUG=1   as -vv
  TINI_SUBREAPER           accepted (always a subreaper)

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
    /// Statuses of the command that make the init exit 0 (tini's `-e`).
    pub expect_status: Vec<i32>,
    /// Signal rewrites before forwarding, `(from, to)`; `to` = 0 drops `from` (dumb-init's `-r`).
    pub rewrite: Vec<(i32, i32)>,
    /// The signal the init gets when its parent exits (tini's `-p`).
    pub parent_death_signal: Option<i32>,
    /// Print each reaped process other than the command (tini's `-w`).
    pub warn_on_reap: bool,
    /// 0: warnings only; 1: start, forwarded signals, exit; 2: every reaped process too.
    pub verbosity: u32,
    /// `-c` (or DUMB_INIT_SETSID=0): signals to the command only, whatever else asks for `-g`.
    pub single_child: bool,
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

/// A signal given by number (`15`) or name (`SIGTERM`, `TERM`, `SIGRTMIN+2`).
fn parse_signal(text: &str, what: &str) -> Result<i32, UsageError> {
    #[cfg(target_os = "linux")]
    let found = crate::signals::number(text);
    #[cfg(not(target_os = "linux"))]
    let found = text.parse::<i32>().ok().filter(|n| (1..=31).contains(n));
    found.ok_or_else(|| {
        UsageError(format!(
            "bad signal {text:?} for {what}: use a number or a name such as 15, TERM or SIGTERM"
        ))
    })
}

/// An exit status 0-255 (tini's `-e`).
fn parse_status(text: &str) -> Result<i32, UsageError> {
    text.parse::<u8>().map(i32::from).map_err(|_| {
        UsageError(format!(
            "bad exit status {text:?} for -e: use a number from 0 to 255"
        ))
    })
}

/// `S:R` (dumb-init's `-r`): forward signal S as R; R = 0 drops it.
fn parse_rewrite(text: &str) -> Result<(i32, i32), UsageError> {
    let bad = || {
        UsageError(format!(
            "bad rewrite {text:?} for -r: use FROM:TO with signal numbers or names (e.g. 15:3, TERM:QUIT; TO = 0 drops FROM)"
        ))
    };
    let (from, to) = text.split_once(':').ok_or_else(bad)?;
    let from = parse_signal(from, "-r").map_err(|_| bad())?;
    let to = if to == "0" {
        0
    } else {
        parse_signal(to, "-r").map_err(|_| bad())?
    };
    Ok((from, to))
}

/// Options that take a value, by every spelling.
fn takes_value(name: &str) -> bool {
    matches!(
        name,
        "--grace"
            | "--report-file"
            | "-e"
            | "--expect-status"
            | "-r"
            | "--rewrite"
            | "-p"
            | "--parent-death-signal"
    )
}

/// Splits one argument into options: `--name[=value]`, or a cluster of short flags as getopt
/// takes them (`-vv`, `-sg`, `-e143`, `-r15:3`: a flag that takes a value takes the rest).
fn split_words(arg: &str) -> Vec<(String, Option<String>)> {
    if arg.starts_with("--") {
        return vec![match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (arg.to_string(), None),
        }];
    }
    let mut out = Vec::new();
    for (at, c) in arg.char_indices().skip(1) {
        let name = format!("-{c}");
        let rest = &arg[at + c.len_utf8()..];
        if takes_value(&name) && !rest.is_empty() {
            out.push((name, Some(rest.to_string())));
            break;
        }
        out.push((name, None));
    }
    out
}

/// Parses the arguments after the program name.
pub fn parse(argv: &[OsString]) -> Result<Parsed, UsageError> {
    let mut opts = Options {
        group: false,
        grace: Duration::from_secs(5),
        wait_leftovers: false,
        report: None,
        report_file: None,
        expect_status: Vec::new(),
        rewrite: Vec::new(),
        parent_death_signal: None,
        warn_on_reap: false,
        verbosity: 0,
        single_child: false,
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
        for (name, inline) in split_words(arg) {
            // The value of an option: after `=` or in its cluster, or the next argument.
            let mut value = |name: &str| -> Result<OsString, UsageError> {
                if let Some(v) = &inline {
                    return Ok(v.into());
                }
                i += 1;
                argv.get(i)
                    .cloned()
                    .ok_or_else(|| UsageError(format!("{name} needs a value")))
            };
            let text = |v: OsString| v.to_string_lossy().into_owned();
            match name.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "-V" | "--version" => return Ok(Parsed::Version),
                "-g" | "--group" => opts.group = true,
                "-c" | "--single-child" => opts.single_child = true,
                "--wait-leftovers" => opts.wait_leftovers = true,
                "-w" | "--warn-on-reap" => opts.warn_on_reap = true,
                "-s" | "--subreaper" => {}
                "-v" | "--verbose" => opts.verbosity += 1,
                "-e" | "--expect-status" => {
                    let v = text(value("-e")?);
                    opts.expect_status.push(parse_status(&v)?);
                }
                "-r" | "--rewrite" => {
                    let v = text(value("-r")?);
                    opts.rewrite.push(parse_rewrite(&v)?);
                }
                "-p" | "--parent-death-signal" => {
                    let v = text(value("-p")?);
                    opts.parent_death_signal = Some(parse_signal(&v, "-p")?);
                }
                "--grace" => {
                    let v = value("--grace")?;
                    opts.grace = parse_duration(&v.to_string_lossy())?;
                }
                "--report" => {
                    opts.report = Some(match inline.as_deref().unwrap_or("table") {
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
                _ if arg.starts_with("--") || arg.len() == 2 => {
                    return Err(UsageError(format!("unknown option {arg}")))
                }
                _ => return Err(UsageError(format!("unknown option {name} (in {arg})"))),
            }
        }
        i += 1;
    }
    if opts.single_child {
        opts.group = false;
    }
    match argv.get(i) {
        Some(command) if !command.is_empty() => {
            opts.command = argv[i..].to_vec();
            Ok(Parsed::Run(opts))
        }
        _ => Err(UsageError("no command given".into())),
    }
}

/// The switches tini and dumb-init read from the environment, applied to `opts` as they apply
/// them: the variables stay in the command's environment.
pub fn apply_env(opts: &mut Options, var: impl Fn(&str) -> Option<OsString>) {
    if var("DUMB_INIT_SETSID").is_some_and(|v| v == "0") {
        opts.single_child = true;
    }
    if var("TINI_KILL_PROCESS_GROUP").is_some() && !opts.single_child {
        opts.group = true;
    }
    if let Some(level) = var("TINI_VERBOSITY") {
        // tini's default is 1 (warnings), which is ours without -v; atoi, as tini reads it.
        let digits: String = level
            .to_string_lossy()
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let tini = digits.parse::<u32>().unwrap_or(0);
        opts.verbosity = opts.verbosity.max(tini.saturating_sub(1));
    }
    if var("DUMB_INIT_DEBUG").is_some_and(|v| v == "1") {
        opts.verbosity = opts.verbosity.max(2);
    }
    if opts.single_child {
        opts.group = false;
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
        let o = run(&[
            "-g",
            "--grace=2s",
            "--wait-leftovers",
            "--report=json",
            "cmd",
            "-g",
            "x",
        ]);
        assert!(o.group && o.wait_leftovers && !o.warn_on_reap);
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
        assert!(err(&["-e", "256", "x"]).starts_with("bad exit status \"256\" for -e"));
        assert!(err(&["-e", "x"]).starts_with("bad exit status \"x\""));
        assert!(err(&["-r", "15", "x"]).starts_with("bad rewrite \"15\" for -r"));
        assert!(err(&["-r", "15:99", "x"]).starts_with("bad rewrite"));
        assert!(err(&["-p", "SIGNOPE", "x"]).starts_with("bad signal \"SIGNOPE\" for -p"));
        assert_eq!(err(&["-gx", "cmd"]), "unknown option -x (in -gx)");
        assert_eq!(err(&["-e"]), "-e needs a value");
    }

    #[test]
    fn the_peers_spellings() {
        // tini: -s accepted, -vv counted, -e repeatable and clustered, -p by name, -w warns.
        let o = run(&[
            "-s", "-vv", "-e", "143", "-e3", "-p", "SIGUSR1", "-w", "-g", "cmd",
        ]);
        assert_eq!(o.verbosity, 2);
        assert_eq!(o.expect_status, vec![143, 3]);
        assert_eq!(o.parent_death_signal, Some(libc::SIGUSR1));
        assert!(o.warn_on_reap && o.group && !o.wait_leftovers);
        // dumb-init: -r s:r (0 drops), --rewrite=, -c undoes -g, --verbose.
        let o = run(&[
            "-r",
            "15:3",
            "--rewrite=TERM:0",
            "-r2:SIGQUIT",
            "-gc",
            "--verbose",
            "cmd",
        ]);
        assert_eq!(o.rewrite, vec![(15, 3), (15, 0), (2, 3)]);
        assert!(!o.group && o.single_child);
        assert_eq!(o.verbosity, 1);
        let o = run(&["-sg", "--expect-status=0", "--parent-death-signal=9", "cmd"]);
        assert!(o.group);
        assert_eq!((o.expect_status, o.parent_death_signal), (vec![0], Some(9)));
    }

    #[test]
    fn the_peers_environment() {
        let with = |vars: &[(&str, &str)], list: &[&str]| {
            let mut o = run(list);
            let vars: Vec<(String, OsString)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.into()))
                .collect();
            apply_env(&mut o, |name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            });
            o
        };
        assert!(with(&[("TINI_KILL_PROCESS_GROUP", "")], &["cmd"]).group);
        assert!(!with(&[("TINI_KILL_PROCESS_GROUP", "1")], &["-c", "cmd"]).group);
        assert!(
            !with(
                &[("TINI_KILL_PROCESS_GROUP", "1"), ("DUMB_INIT_SETSID", "0")],
                &["cmd"]
            )
            .group
        );
        assert!(with(&[("DUMB_INIT_SETSID", "1")], &["-g", "cmd"]).group);
        assert_eq!(with(&[("TINI_VERBOSITY", "3")], &["cmd"]).verbosity, 2);
        assert_eq!(with(&[("TINI_VERBOSITY", "1")], &["cmd"]).verbosity, 0);
        assert_eq!(
            with(&[("TINI_VERBOSITY", "x")], &["-v", "cmd"]).verbosity,
            1
        );
        assert_eq!(with(&[("DUMB_INIT_DEBUG", "1")], &["cmd"]).verbosity, 2);
        assert_eq!(with(&[("DUMB_INIT_DEBUG", "yes")], &["cmd"]).verbosity, 0);
        assert!(!with(&[("TINI_SUBREAPER", "")], &["cmd"]).group);
    }
}
