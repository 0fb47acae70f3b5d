//! `pail group list|describe|reset-offsets|delete`: the operator's view of consumer groups.
//! Members themselves run as `pail consume TOPIC --group G`.

use clap::{ArgGroup, Args, Subcommand};
use pail_core::Pail;
use pail_core::group::{GroupDescription, ResetTo};
use std::io::Write;

use super::{Format, FormatArg, plural, values};

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups, one per line.
    #[command(after_help = "\
Examples:
  pail group list")]
    List,
    /// Show a group's state, members, and per partition the owner, committed offset, end
    /// offset and lag (end minus committed).
    #[command(after_help = "\
Examples:
  pail group describe billing
  pail group describe billing --format json")]
    Describe {
        group: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Set a group's committed offsets for every partition of a topic (refused while the group
    /// has live members, as Kafka does).
    #[command(after_help = "\
Examples:
  pail group reset-offsets billing --topic orders --to-earliest
  pail group reset-offsets billing --topic orders --to-offset 1000
  pail group reset-offsets billing --topic orders --to-datetime 2026-01-31T12:00:00Z")]
    ResetOffsets(ResetArgs),
    /// Delete a group and its committed offsets (refused while it has live members).
    #[command(after_help = "\
Examples:
  pail group delete billing")]
    Delete { group: String },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("to").required(true).multiple(false)
    .args(["to_earliest", "to_latest", "to_offset", "to_datetime"])))]
pub struct ResetArgs {
    pub group: String,
    /// The topic whose partitions' offsets are set.
    #[arg(long)]
    pub topic: String,
    /// Each partition's oldest record kept.
    #[arg(long)]
    pub to_earliest: bool,
    /// Each partition's end: only records produced from now on are consumed.
    #[arg(long)]
    pub to_latest: bool,
    /// This offset in every partition (refused if a partition does not have it).
    #[arg(long, value_name = "N", value_parser = values::whole_u64)]
    pub to_offset: Option<u64>,
    /// Each partition's first record with a timestamp at or after this RFC 3339 time (with Z
    /// or an offset such as +02:00), or its end if none is.
    #[arg(long, value_name = "RFC3339", value_parser = parse_datetime)]
    pub to_datetime: Option<i64>,
}

impl ResetArgs {
    fn to(&self) -> ResetTo {
        match (self.to_offset, self.to_datetime) {
            (Some(n), _) => ResetTo::Offset(n),
            (_, Some(ms)) => ResetTo::Timestamp(ms),
            _ if self.to_latest => ResetTo::Latest,
            _ => ResetTo::Earliest,
        }
    }
}

/// An RFC 3339 time as milliseconds since the Unix epoch.
fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad =
        |why: String| format!("{s:?} is not an RFC 3339 time like 2026-01-31T12:00:00Z: {why}");
    let (local, offset_s) =
        split_offset(s).ok_or_else(|| bad("no Z or +HH:MM at the end".into()))?;
    let t = humantime::parse_rfc3339_weak(local).map_err(|e| bad(e.to_string()))?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad("before 1970".into()))?
        .as_millis();
    let ms = i64::try_from(ms).map_err(|_| bad("too far in the future".into()))?;
    Ok(ms - offset_s * 1000)
}

/// Splits the zone off a time: `Z` is offset 0, `+HH:MM` / `-HH:MM` in seconds east of UTC.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(local) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((local, 0));
    }
    let at = s.len().checked_sub(6)?;
    let (local, zone) = s.split_at_checked(at)?;
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = zone[1..].split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((local, sign * (h * 3600 + m * 60)))
}

pub async fn run(pail: &Pail, cmd: GroupCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        GroupCommand::List => {
            for g in pail.list_groups().await? {
                writeln!(out, "{g}")?;
            }
        }
        GroupCommand::Describe { group, format } => {
            let d = pail.describe_group(&group).await?;
            match format.format {
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&d)?)?,
                Format::Text => print_description(&mut out, &d)?,
            }
        }
        GroupCommand::ResetOffsets(args) => {
            let set = pail
                .reset_group_offsets(&args.group, &args.topic, args.to())
                .await?;
            for (tp, offset) in &set {
                writeln!(out, "{tp} {offset}")?;
            }
        }
        GroupCommand::Delete { group } => {
            pail.delete_group(&group).await?;
            writeln!(out, "deleted group {group}")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn print_description(out: &mut impl Write, d: &GroupDescription) -> std::io::Result<()> {
    writeln!(
        out,
        "group {}: {}, generation {}, assignor {}, {}",
        d.group,
        d.state,
        d.generation,
        d.protocol,
        plural(d.members.len() as u64, "member")
    )?;
    for m in &d.members {
        let instance = m
            .instance_id
            .as_ref()
            .map(|i| format!(" instance {i}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  member {}{instance}: {} partitions, lease {} ms left, client {:?}",
            m.id,
            m.partitions.len(),
            m.lease_left_ms,
            m.client
        )?;
    }
    writeln!(
        out,
        "{:<30} {:>9} {:>12} {:>12} {:>10}  OWNER",
        "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
    )?;
    for p in &d.partitions {
        let committed = p.committed.map_or("-".to_string(), |c| c.to_string());
        let owner = match (&p.owner, &p.moving_to) {
            (Some(o), Some(n)) => format!("{o} -> {n}"),
            (Some(o), None) => o.clone(),
            _ => "-".to_string(),
        };
        writeln!(
            out,
            "{:<30} {:>9} {:>12} {:>12} {:>10}  {owner}",
            p.topic, p.partition, committed, p.end_offset, p.lag
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_with_any_zone() {
        let utc = parse_datetime("2026-01-31T12:00:00Z").unwrap();
        assert_eq!(utc, 1_769_860_800_000);
        assert_eq!(parse_datetime("2026-01-31T14:00:00+02:00").unwrap(), utc);
        assert_eq!(
            parse_datetime("2026-01-31T11:30:00.5-00:30").unwrap(),
            utc + 500
        );
        for bad in [
            "2026-01-31T12:00:00",
            "yesterday",
            "2026-01-31T12:00:00+25:00",
            "",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }
}
