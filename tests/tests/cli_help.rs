//! What the `pail` command line says about itself: usage when run bare, error lines that name
//! the argument, `--help` with examples for every command, shell completions, and the README's
//! DuckDB query run on values that are not UTF-8.
//!
//! Needs the binary built first (see [`pail_tests::pail_bin`]).
#![allow(clippy::unwrap_used)]

use pail_tests::cli::*;
use pail_tests::{Finished, pail_bin, python, run_timed};
use std::process::Command;

/// `pail ARGS` with no store option or variable, in an empty temporary directory (returned, so
/// a test can check nothing was written there).
fn bare(args: &[&str]) -> (Finished, tempfile::TempDir) {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(pail_bin());
    cmd.env_remove("PAIL_STORE")
        .current_dir(cwd.path())
        .args(args);
    (run_timed(cmd, None, COMMAND), cwd)
}

fn assert_nothing_written(cwd: &tempfile::TempDir) {
    assert!(std::fs::read_dir(cwd.path()).unwrap().next().is_none());
}

#[test]
fn pail_alone_prints_its_usage_and_commands() {
    let (f, cwd) = bare(&[]);
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    assert!(f.stdout.is_empty());
    assert!(
        f.stderr.contains("Usage: pail [OPTIONS] <COMMAND>"),
        "{}",
        f.stderr
    );
    for command in ["topic", "produce", "consume", "completions"] {
        assert!(
            f.stderr.contains(&format!("\n  {command} ")),
            "{command}: {}",
            f.stderr
        );
    }
    assert!(
        !f.stderr.contains("Lambda"),
        "a crate description: {}",
        f.stderr
    );
    assert_nothing_written(&cwd);
    // --help says the same on stdout, and succeeds.
    let (help, _) = bare(&["--help"]);
    assert_eq!(help.assert_ok().stdout_text(), f.stderr);
}

#[test]
fn a_missing_argument_is_named() {
    for (args, needle) in [
        (vec!["produce"], "<TOPIC>"),
        (vec!["consume"], "<TOPIC>"),
        (vec!["topic", "create", "t"], "--partitions <PARTITIONS>"),
        (vec!["topic", "describe"], "<NAME>"),
        (vec!["completions"], "<SHELL>"),
        (vec!["group", "describe"], "<GROUP>"),
        (
            vec!["group", "reset-offsets", "g", "--topic", "t"],
            "--to-earliest|--to-latest",
        ),
    ] {
        let (f, cwd) = bare(&args);
        let line = f.assert_one_error(2, &["required arguments were not provided", needle]);
        assert!(line.ends_with("(see pail --help)"), "{line}");
        assert_nothing_written(&cwd);
    }
    // A command group alone prints its usage, as `pail` alone does.
    let (f, _) = bare(&["topic"]);
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    assert!(
        f.stderr.contains("Usage: pail topic [OPTIONS] <COMMAND>"),
        "{}",
        f.stderr
    );
    for command in ["create", "list", "describe"] {
        assert!(
            f.stderr.contains(&format!("\n  {command} ")),
            "{}",
            f.stderr
        );
    }
}

/// The subcommands a `--help` text lists (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

#[test]
fn every_command_has_an_example_in_its_help() {
    let (top, _) = bare(&["--help"]);
    let mut queue: Vec<Vec<String>> = subcommands(&top.stdout_text())
        .into_iter()
        .map(|c| vec![c])
        .collect();
    let mut seen = 0;
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (f, _) = bare(&args);
        let help = f.assert_ok().stdout_text();
        let example = format!("  pail {}", path.join(" "));
        assert!(
            help.contains("Examples:\n") && help.contains(&example),
            "pail {} --help has no example:\n{help}",
            path.join(" ")
        );
        for sub in subcommands(&help) {
            let mut deeper = path.clone();
            deeper.push(sub);
            queue.push(deeper);
        }
        seen += 1;
    }
    // topic, its create/list/describe, produce, consume, bench, completions.
    assert!(seen >= 8, "only {seen} commands found");
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let (bash, cwd) = bare(&["completions", "bash"]);
    let script = bash.assert_ok().stdout_text();
    assert!(
        script.contains("_pail()") && script.contains("consume"),
        "{script}"
    );
    assert_nothing_written(&cwd);
    let file = cwd.path().join("pail.bash");
    std::fs::write(&file, &script).unwrap();
    let mut check = Command::new("bash");
    check.arg("-n").arg(&file);
    run_timed(check, None, COMMAND).assert_ok();

    let (zsh, _) = bare(&["completions", "zsh"]);
    assert!(zsh.assert_ok().stdout_text().starts_with("#compdef pail"));
    let (fish, _) = bare(&["completions", "fish"]);
    let fish = fish.assert_ok().stdout_text();
    assert!(
        fish.contains("complete -c pail") && fish.contains("-l follow"),
        "{fish}"
    );
    let (f, _) = bare(&["completions", "tcsh"]);
    f.assert_one_error(2, &["invalid value 'tcsh'", "bash"]);
}

/// The SQL block of the README's analytics section.
fn readme_sql() -> String {
    let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    let start = text.find("```sql\n").expect("README has a SQL example") + "```sql\n".len();
    let len = text[start..].find("```").unwrap();
    text[start..start + len].to_string()
}

#[test]
fn the_readme_duckdb_query_reads_values_that_are_not_utf8() {
    let Some(python) = python() else {
        return;
    };
    let cwd = tempfile::tempdir().unwrap();
    let store = cwd.path().join("pail-data");
    let s = store.to_str().unwrap();
    create(s, "demo", 3);
    pail_with_stdin(
        s,
        &["produce", "demo", "-p", "1"],
        b"text\nbin\xff\xfe\n".to_vec(),
    )
    .assert_ok();
    let script = "import duckdb, sys\n\
                  for row in duckdb.sql(sys.stdin.read()).fetchall():\n    print(repr(row))\n";
    let mut cmd = Command::new(python);
    cmd.current_dir(cwd.path()).args(["-c", script]);
    let f = run_timed(cmd, Some(readme_sql().into_bytes()), COMMAND);
    let rows = f.assert_ok().stdout_text();
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].starts_with("(1, 0, ") && rows[0].contains("'text'"),
        "{rows:?}"
    );
    // Not UTF-8: no text, and the bytes as they are.
    assert!(
        rows[1].contains("None") && rows[1].contains(r"b'bin\xff\xfe'"),
        "{rows:?}"
    );
}
