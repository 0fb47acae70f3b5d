//! The assignors: pure functions from members, subscriptions and partition counts (and, for
//! sticky, who holds what now) to one member per partition.
//!
//! Deterministic: every member that commits a membership change computes the same assignment
//! from the same state, so no leader member and no coordinator process is needed.

use std::collections::{BTreeMap, BTreeSet};

use super::state::{Assignor, TopicPartition};

/// What an assignor sees of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriber {
    pub id: String,
    pub topics: BTreeSet<String>,
}

/// One member per partition of every topic some member subscribes to (topics nobody
/// subscribes to are left out). `current` is who holds (or is about to hold) each partition,
/// which only the sticky assignor uses.
pub fn assign(
    assignor: Assignor,
    members: &[Subscriber],
    partitions: &BTreeMap<String, u32>,
    current: &BTreeMap<TopicPartition, String>,
) -> BTreeMap<TopicPartition, String> {
    let mut members: Vec<&Subscriber> = members.iter().collect();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    match assignor {
        Assignor::Range => range(&members, partitions),
        Assignor::RoundRobin => round_robin(&members, partitions),
        Assignor::Sticky => sticky(&members, partitions, current),
    }
}

fn subscribers<'a>(members: &[&'a Subscriber], topic: &str) -> Vec<&'a Subscriber> {
    members
        .iter()
        .copied()
        .filter(|m| m.topics.contains(topic))
        .collect()
}

fn range(
    members: &[&Subscriber],
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<TopicPartition, String> {
    let mut out = BTreeMap::new();
    for (topic, &count) in partitions {
        let subs = subscribers(members, topic);
        if subs.is_empty() {
            continue;
        }
        let (each, extra) = (count as usize / subs.len(), count as usize % subs.len());
        let mut next = 0u32;
        for (i, m) in subs.iter().enumerate() {
            let n = each + usize::from(i < extra);
            for _ in 0..n {
                out.insert(TopicPartition::new(topic.clone(), next), m.id.clone());
                next += 1;
            }
        }
    }
    out
}

fn all_partitions(partitions: &BTreeMap<String, u32>) -> impl Iterator<Item = TopicPartition> + '_ {
    partitions
        .iter()
        .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
}

fn round_robin(
    members: &[&Subscriber],
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<TopicPartition, String> {
    let mut out = BTreeMap::new();
    let mut turn = 0usize;
    for tp in all_partitions(partitions) {
        // The next member in turn that subscribes to this topic.
        let found = (0..members.len())
            .map(|i| (turn + i) % members.len())
            .find(|&i| members[i].topics.contains(&tp.topic));
        if let Some(i) = found {
            out.insert(tp, members[i].id.clone());
            turn = i + 1;
        }
    }
    out
}

/// Keeps each partition with its current holder while that holder is under its quota, then
/// gives the rest to the eligible member holding the fewest. With one subscription shared by
/// all members the result is balanced to within one partition, and a member that stays keeps
/// every partition it can keep within balance.
fn sticky(
    members: &[&Subscriber],
    partitions: &BTreeMap<String, u32>,
    current: &BTreeMap<TopicPartition, String>,
) -> BTreeMap<TopicPartition, String> {
    let wanted: Vec<TopicPartition> = all_partitions(partitions)
        .filter(|tp| members.iter().any(|m| m.topics.contains(&tp.topic)))
        .collect();
    if members.is_empty() {
        return BTreeMap::new();
    }
    let (floor, extra) = (wanted.len() / members.len(), wanted.len() % members.len());
    let mut count: BTreeMap<&str, usize> = members.iter().map(|m| (m.id.as_str(), 0)).collect();
    let mut at_ceiling = 0usize;
    let mut out = BTreeMap::new();
    let mut left = Vec::new();
    for tp in wanted {
        let holder = current.get(&tp).and_then(|id| {
            members
                .iter()
                .find(|m| &m.id == id && m.topics.contains(&tp.topic))
        });
        let keep = holder.filter(|m| {
            let n = count[m.id.as_str()];
            n < floor || (n == floor && at_ceiling < extra)
        });
        match keep {
            Some(m) => {
                let n = count.get_mut(m.id.as_str()).map(|n| {
                    *n += 1;
                    *n
                });
                if n == Some(floor + 1) {
                    at_ceiling += 1;
                }
                out.insert(tp, m.id.clone());
            }
            None => left.push(tp),
        }
    }
    for tp in left {
        let fewest = members
            .iter()
            .filter(|m| m.topics.contains(&tp.topic))
            .min_by_key(|m| (count[m.id.as_str()], m.id.as_str()));
        if let Some(m) = fewest {
            if let Some(n) = count.get_mut(m.id.as_str()) {
                *n += 1;
            }
            out.insert(tp, m.id.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subs(n: usize, topics: &[&str]) -> Vec<Subscriber> {
        (0..n)
            .map(|i| Subscriber {
                id: format!("m{i:02}"),
                topics: topics.iter().map(|t| t.to_string()).collect(),
            })
            .collect()
    }

    fn counts(a: &BTreeMap<TopicPartition, String>) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for m in a.values() {
            *c.entry(m.clone()).or_insert(0) += 1;
        }
        c
    }

    fn topics(parts: &[(String, u32)]) -> BTreeMap<String, u32> {
        parts.iter().cloned().collect()
    }

    #[test]
    fn range_splits_each_topic_in_runs() {
        let a = assign(
            Assignor::Range,
            &subs(2, &["t"]),
            &topics(&[("t".into(), 5)]),
            &BTreeMap::new(),
        );
        let owners: Vec<&str> = (0..5)
            .map(|p| a[&TopicPartition::new("t", p)].as_str())
            .collect();
        assert_eq!(owners, ["m00", "m00", "m00", "m01", "m01"]);
    }

    #[test]
    fn only_subscribers_get_a_topic() {
        let mut members = subs(2, &["a"]);
        members[1].topics.insert("b".into());
        for assignor in [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky] {
            let a = assign(
                assignor,
                &members,
                &topics(&[("a".into(), 4), ("b".into(), 3)]),
                &BTreeMap::new(),
            );
            assert_eq!(a.len(), 7, "{assignor:?}");
            for p in 0..3 {
                assert_eq!(a[&TopicPartition::new("b", p)], "m01", "{assignor:?}");
            }
        }
    }

    fn assignor() -> impl Strategy<Value = Assignor> {
        prop_oneof![
            Just(Assignor::Range),
            Just(Assignor::RoundRobin),
            Just(Assignor::Sticky)
        ]
    }

    proptest! {
        /// Every partition exactly once; with one shared subscription, counts differ by at most
        /// one (range: per topic, so over one topic).
        #[test]
        fn assignments_are_complete_and_balanced(
            assignor in assignor(),
            members in 1usize..12,
            parts in proptest::collection::vec(1u32..40, 1..4),
        ) {
            let names: Vec<String> = (0..parts.len()).map(|i| format!("t{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let ts: Vec<(String, u32)> = names.iter().cloned().zip(parts.iter().copied()).collect();
            let partitions = topics(&ts);
            let a = assign(assignor, &subs(members, &refs), &partitions, &BTreeMap::new());
            let total: u32 = parts.iter().sum();
            prop_assert_eq!(a.len() as u32, total);
            let balanced_over = if assignor == Assignor::Range { 1 } else { parts.len() };
            if parts.len() <= balanced_over {
                let c = counts(&a);
                let (lo, hi) = if c.len() < members {
                    (0, c.values().copied().max().unwrap_or(0))
                } else {
                    (c.values().copied().min().unwrap_or(0), c.values().copied().max().unwrap_or(0))
                };
                prop_assert!(hi - lo <= 1, "{:?}", c);
            }
        }

        /// Sticky: balanced, and after members leave, every partition of a member that stayed
        /// stays with it; after members join, only as many partitions move as balance needs.
        #[test]
        fn sticky_moves_only_what_balance_needs(
            before in 1usize..10,
            after in 1usize..10,
            count in 1u32..60,
        ) {
            let partitions = topics(&[("t".into(), count)]);
            let old = assign(Assignor::Sticky, &subs(before, &["t"]), &partitions, &BTreeMap::new());
            let new_members = subs(after, &["t"]);
            let new = assign(Assignor::Sticky, &new_members, &partitions, &old);
            prop_assert_eq!(new.len() as u32, count);
            let c = counts(&new);
            let lo = if c.len() < after { 0 } else { c.values().copied().min().unwrap_or(0) };
            prop_assert!(c.values().copied().max().unwrap_or(0) - lo <= 1, "{:?}", c);
            let stayed = |id: &String| new_members.iter().any(|m| &m.id == id);
            let moved = old.iter().filter(|(tp, o)| stayed(o) && new[*tp] != **o).count();
            if after <= before {
                prop_assert_eq!(moved, 0, "a staying member lost a partition");
            } else {
                // Joiners need floor(count / after) each at least; nothing else moves.
                let needed = (after - before) * (count as usize / after);
                prop_assert!(moved <= needed + (after - before), "moved {} needed {}", moved, needed);
            }
        }
    }
}
