//! `pail doctor`: checks every partition's chain and prints each problem with the object's key
//! and what to do, one per line; exits 1 when it found any. `--repair` first moves the objects
//! that are certainly not pail's out of the chains' way (see `pail_core::doctor`).

use clap::Args;
use pail_core::Pail;
use pail_core::doctor::{Repaired, Report};
use std::io::Write;

use super::{Format, FormatArg};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pail doctor\n  pail doctor --topic orders --format json\n  \
                        pail doctor --topic orders --repair"
)]
pub struct DoctorArgs {
    /// Check only this topic (default: every topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Move objects that are certainly not pail's (bytes pail never wrote where a segment
    /// would go, stray files, unreadable hints) to _quarantine/ in the store, copying first.
    /// Never moves a readable segment or one that may hold committed records.
    #[arg(long)]
    pub repair: bool,
    #[command(flatten)]
    pub format: FormatArg,
}

pub async fn run(pail: &Pail, args: DoctorArgs) -> anyhow::Result<()> {
    let topic = args.topic.as_deref();
    let mut out = std::io::stdout().lock();
    let after = if args.repair {
        let repaired = pail.repair(topic).await?;
        match args.format.format {
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&repaired)?)?,
            Format::Text => print_repair(&mut out, &repaired)?,
        }
        repaired.after
    } else {
        let report = pail.doctor(topic).await?;
        match args.format.format {
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
            Format::Text => print_report(&mut out, &report)?,
        }
        report
    };
    out.flush()?;
    if !after.healthy() {
        let n = after.findings.len();
        anyhow::bail!(
            "{n} {} found, listed above with what to do",
            if n == 1 { "problem" } else { "problems" }
        );
    }
    Ok(())
}

fn print_repair(out: &mut impl Write, r: &Repaired) -> std::io::Result<()> {
    for m in &r.moved {
        writeln!(out, "moved {} to {} ({})", m.from, m.to, m.why)?;
    }
    for n in &r.not_moved {
        writeln!(out, "not moved {}: {}", n.key, n.reason)?;
    }
    print_report(out, &r.after)
}

fn print_report(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    for f in &r.findings {
        writeln!(
            out,
            "{}: {}: {}. What to do: {}",
            f.problem.as_str(),
            f.key,
            f.detail,
            f.action
        )?;
    }
    writeln!(
        out,
        "{}: {} {}, {} {}, {} {}, {} {} on the chains",
        if r.healthy() { "healthy" } else { "damaged" },
        r.topics,
        plural(r.topics, "topic"),
        r.partitions,
        plural(r.partitions, "partition"),
        r.objects,
        plural(r.objects, "object"),
        r.segments,
        plural(r.segments, "segment"),
    )
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}
