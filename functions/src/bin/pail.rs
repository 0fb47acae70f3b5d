//! The `pail` command line. Errors are one line on stderr and a non-zero exit: 2 for a bad
//! command line, 1 for anything else. Never a panic backtrace.

use clap::FromArgMatches;
use clap::error::ErrorKind;
use pail_functions::cli::{
    Cli, Reported, UsageError, command, describe, is_broken_pipe, one_line, run,
};
use std::process::ExitCode;

/// Exit code for a command line that does not parse or make sense.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        // A panic of the Parquet decoder on a damaged segment is contained and reported as
        // corruption of that object; only other panics are worth a line of their own.
        if pail_core::segment::panic_is_contained() {
            return;
        }
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("pail: internal error: {}{at}", one_line(&message));
    }));
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pail: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.is::<Reported>() => ExitCode::FAILURE,
        Err(e) if e.is::<UsageError>() => {
            eprintln!("pail: error: {e} (see pail --help)");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("pail: error: {}", describe(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// The command line, or the exit code after clap's answer: help and version on stdout, `pail`
/// alone prints its help on stderr (exit 2, as git and kcat print their usage), and every
/// other error is one line that keeps what clap says (which argument, which value, why).
fn parse() -> Result<Cli, ExitCode> {
    let error = match command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            Err(ExitCode::SUCCESS)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            Err(ExitCode::from(EXIT_USAGE))
        }
        _ => {
            eprintln!("pail: {} (see pail --help)", first_paragraph(&error));
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// clap's message up to its first blank line, on one line: the error and what it names (a
/// missing argument is listed on the lines after "were not provided:"), without usage or tips.
fn first_paragraph(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .collect();
    match one_line(&paragraph.join(" ")) {
        text if text.is_empty() => "invalid command line".to_string(),
        text => text,
    }
}
