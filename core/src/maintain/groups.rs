//! Old consumer-group versions: each version of a group's chain holds the whole state, so
//! versions well below the tip are history nobody reads. A pass deletes those below
//! `min(tip + 1 - GROUP_VERSIONS_KEPT, hinted version)`, oldest first: never the tip, never
//! the version the hint names, never the last [`GROUP_VERSIONS_KEPT`].
//!
//! A member paused with a cached tip that has since been deleted cannot re-create its
//! successor for good: the commit loop checks, after every create, that the version it built
//! on is still there (`chain::commit`), and withdraws a create built on a deleted version. A
//! client that only *reads* from such a cached tip would take it for the newest version (its
//! successor is missing, as a tip's is), which is why a group tip is trusted for at most
//! [`crate::group::GROUP_TIP_TTL`] before the chain is discovered again.

use serde::Serialize;

use super::DELETE_CHUNK;
use crate::chain::tip;
use crate::client::Pail;
use crate::error::Result;
use crate::group::GroupName;
use crate::storage::keys;

/// The newest versions of a group that a pass always keeps: two hint intervals, so a member
/// must fall this far behind (and a pass run meanwhile) before its cached tip is deleted.
pub const GROUP_VERSIONS_KEPT: u64 = 2 * tip::HINT_EVERY_VERSIONS;

/// What a pass did (or, in a dry run, would do) to one group's chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupReport {
    pub group: String,
    pub tip_version: u64,
    /// Versions below this one are gone (deleted now or by an earlier pass).
    pub kept_from: u64,
    pub deleted_versions: u64,
    pub deleted_bytes: u64,
    /// Why the group was left alone, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The first version a pass keeps: the newest [`GROUP_VERSIONS_KEPT`], and the hinted one.
pub fn first_kept(tip_version: u64, hinted: Option<u64>) -> u64 {
    let by_count = (tip_version + 1).saturating_sub(GROUP_VERSIONS_KEPT).max(1);
    hinted.map_or(by_count, |h| by_count.min(h.max(1)))
}

impl Pail {
    /// Deletes old versions of every consumer group (deleted groups included).
    pub async fn maintain_groups(&self, dry_run: bool) -> Result<Vec<GroupReport>> {
        let dirs = self.store().list_dirs(&keys::groups_root()).await?;
        let mut reports = Vec::new();
        for name in dirs.iter().filter_map(keys::parse_group_dir) {
            reports.push(self.maintain_group(&name, dry_run).await?);
        }
        Ok(reports)
    }

    /// Deletes one group's old versions, oldest first. Costs 1 GET (hint), the discovery of
    /// the tip (1 LIST + 1 GET when cold), 1 LIST page per 1,000 versions, and one
    /// DeleteObjects per 1,000 versions deleted.
    pub async fn maintain_group(&self, group: &str, dry_run: bool) -> Result<GroupReport> {
        let name = GroupName::new(group)?;
        let chain = self.group_chain(&name);
        let mut report = GroupReport {
            group: group.to_string(),
            ..GroupReport::default()
        };
        let head = tip::latest(&chain).await?;
        if let Some(b) = head.blocked {
            report.skipped = Some(format!("{}: {}", b.key, b.reason));
            return Ok(report);
        }
        report.tip_version = head.tip.number();
        let hinted = tip::read_hint(&chain).await?.map(|(_, v)| v);
        report.kept_from = first_kept(report.tip_version, hinted);
        let listed = self
            .store()
            .list_after(&keys::group_versions(group), None)
            .await?;
        let doomed: Vec<_> = listed
            .into_iter()
            .filter(|m| {
                keys::parse_group_version(&m.location).is_some_and(|v| v < report.kept_from)
            })
            .collect();
        // Listings come in key order, which is version order: the oldest go first.
        for chunk in doomed.chunks(DELETE_CHUNK) {
            if !dry_run {
                let keys: Vec<_> = chunk.iter().map(|m| m.location.clone()).collect();
                self.store().delete_many(&keys).await?;
            }
            report.deleted_versions += chunk.len() as u64;
            report.deleted_bytes += chunk.iter().map(|m| m.size).sum::<u64>();
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tip_the_hint_and_the_newest_versions_are_kept() {
        assert_eq!(first_kept(0, None), 1, "an empty chain keeps everything");
        assert_eq!(first_kept(GROUP_VERSIONS_KEPT, None), 1);
        assert_eq!(first_kept(1000, None), 1001 - GROUP_VERSIONS_KEPT);
        assert_eq!(
            first_kept(1000, Some(640)),
            640,
            "an old hint's version stays"
        );
        assert_eq!(first_kept(1000, Some(960)), 1001 - GROUP_VERSIONS_KEPT);
        assert_eq!(first_kept(5, Some(0)), 1);
    }
}
