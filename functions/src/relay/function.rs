//! `pail-consumer`, the consumer function on AWS Lambda, run by a schedule (an EventBridge
//! rule; the event itself carries nothing it needs). Each invocation joins the group as the
//! static member `PAIL_INSTANCE_ID`, runs the loop until idle or until the invocation's
//! deadline less `PAIL_DEADLINE_MARGIN_MS`, commits, and answers with a [`Summary`]. It does
//! not leave: with a session timeout longer than the schedule's period, the next invocation
//! comes back as the same static member and takes the same partitions without a rebalance.
//!
//! Settings, from the function's environment:
//! `PAIL_GROUP`, `PAIL_TOPICS` (comma-separated), `PAIL_TARGET` (`lambda:FUNCTION` or a URL),
//! and optionally `PAIL_DEAD_LETTER_TOPIC`, `PAIL_INSTANCE_ID` (default: the group's name),
//! `PAIL_BATCH_SIZE` (100), `PAIL_MAX_TRIES` (3), `PAIL_START` (`earliest` or `latest`, where a
//! partition without a committed offset starts; default latest), `PAIL_SESSION_TIMEOUT_MS`
//! (180000), `PAIL_IDLE_MS` (2000), `PAIL_DEADLINE_MARGIN_MS` (5000), `PAIL_LAMBDA_ENDPOINT`.

use anyhow::Context;
use pail_core::Pail;
use pail_core::consumer::{Consumer, OffsetReset};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

use super::{RelaySettings, Summary, Target, TargetSpec, Until};
use crate::http::host::time_left;

/// Kept back from the invocation's remaining time for joining and the final commit.
pub const DEADLINE_MARGIN_DEFAULT: Duration = Duration::from_secs(5);
/// Three periods of a one-minute schedule: one late or failed invocation keeps the partitions.
pub const SESSION_TIMEOUT_DEFAULT_MS: u64 = 180_000;
const IDLE_DEFAULT: Duration = Duration::from_secs(2);

/// The function's settings, read once per container.
#[derive(Clone, Debug)]
pub struct FunctionConfig {
    pub settings: RelaySettings,
    pub target: TargetSpec,
    pub lambda_endpoint: Option<String>,
    pub idle: Duration,
    pub margin: Duration,
}

impl FunctionConfig {
    pub fn from_env() -> anyhow::Result<FunctionConfig> {
        FunctionConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// The settings from `var` (the environment, or a test's map).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<FunctionConfig> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let required =
            |k: &str, what: &str| var(k).with_context(|| format!("{k} is not set: {what}"));
        let number = |k: &str, default: u64, min: u64| -> anyhow::Result<u64> {
            let Some(text) = var(k) else {
                return Ok(default);
            };
            match text.trim().parse::<u64>() {
                Ok(n) if n >= min => Ok(n),
                _ => anyhow::bail!("{k}={text:?} is not a whole number of at least {min}"),
            }
        };
        let group = required("PAIL_GROUP", "name the consumer group")?;
        let topics: Vec<String> = required("PAIL_TOPICS", "name the topics, comma-separated")?
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        let target = TargetSpec::parse(&required("PAIL_TARGET", "name the target")?)
            .map_err(|e| anyhow::anyhow!("PAIL_TARGET: {e}"))?;
        let start = match var("PAIL_START").as_deref() {
            None | Some("latest") => OffsetReset::Latest,
            Some("earliest") => OffsetReset::Earliest,
            Some(other) => anyhow::bail!("PAIL_START={other:?} is not earliest or latest"),
        };
        let small = |k: &str, d, min| {
            let n = number(k, d, min)?;
            u32::try_from(n).with_context(|| format!("{k}={n} is over {}", u32::MAX))
        };
        let settings = RelaySettings {
            instance_id: var("PAIL_INSTANCE_ID").unwrap_or_else(|| group.clone()),
            group,
            topics,
            batch_size: small("PAIL_BATCH_SIZE", 100, 1)?,
            max_tries: small("PAIL_MAX_TRIES", 3, 1)?,
            dead_letter_topic: var("PAIL_DEAD_LETTER_TOPIC"),
            start,
            session_timeout_ms: number("PAIL_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_DEFAULT_MS, 1)?,
            client: "pail-consumer".into(),
        };
        Ok(FunctionConfig {
            settings,
            target,
            lambda_endpoint: var("PAIL_LAMBDA_ENDPOINT"),
            idle: Duration::from_millis(number(
                "PAIL_IDLE_MS",
                IDLE_DEFAULT.as_millis() as u64,
                1,
            )?),
            margin: Duration::from_millis(number(
                "PAIL_DEADLINE_MARGIN_MS",
                DEADLINE_MARGIN_DEFAULT.as_millis() as u64,
                0,
            )?),
        })
    }
}

/// The function's state across warm invocations: the client with its caches, the target with
/// its HTTP connections and credentials.
pub struct ConsumerFunction {
    pail: Pail,
    config: FunctionConfig,
    target: Target,
}

impl ConsumerFunction {
    pub async fn new(pail: Pail, config: FunctionConfig) -> anyhow::Result<ConsumerFunction> {
        let target = Target::connect(&config.target, config.lambda_endpoint.as_deref()).await?;
        Ok(ConsumerFunction {
            pail,
            config,
            target,
        })
    }

    /// One invocation, whose deadline is `deadline_ms` (milliseconds since the Unix epoch, as
    /// the Lambda context gives it).
    pub async fn invoke(&self, deadline_ms: u64) -> anyhow::Result<Summary> {
        let budget = time_left(deadline_ms, SystemTime::now(), self.config.margin);
        tracing::info!(
            deadline_ms,
            budget_ms = budget.as_millis() as u64,
            "consumer run"
        );
        let deadline = Instant::now() + budget;
        let settings = &self.config.settings;
        let mut consumer = Consumer::join(self.pail.clone(), settings.consumer_config()).await?;
        let until = Until {
            idle: Some(self.config.idle),
            deadline: Some(deadline),
        };
        let pending = std::future::pending();
        // No leave: the static member keeps its partitions until the next invocation.
        super::run(
            &self.pail,
            settings,
            &self.target,
            &mut consumer,
            until,
            pending,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> anyhow::Result<FunctionConfig> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        FunctionConfig::from_lookup(|k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("PAIL_GROUP", "billing"),
        ("PAIL_TOPICS", "orders, refunds"),
        ("PAIL_TARGET", "lambda:biller:live"),
    ];

    #[test]
    fn the_environment_configures_a_static_member() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.settings.topics, ["orders", "refunds"]);
        assert_eq!(c.settings.instance_id, "billing");
        assert_eq!(c.target, TargetSpec::Lambda("biller:live".into()));
        assert_eq!(c.settings.session_timeout_ms, SESSION_TIMEOUT_DEFAULT_MS);
        assert_eq!(c.margin, DEADLINE_MARGIN_DEFAULT);
    }

    #[test]
    fn bad_settings_are_named() {
        for (k, v, says) in [
            ("PAIL_TARGET", "biller", "PAIL_TARGET"),
            ("PAIL_BATCH_SIZE", "0", "PAIL_BATCH_SIZE"),
            ("PAIL_MAX_TRIES", "x", "PAIL_MAX_TRIES"),
            ("PAIL_START", "middle", "PAIL_START"),
            ("PAIL_BATCH_SIZE", "99999999999", "PAIL_BATCH_SIZE"),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push((k, v));
            let e = format!("{:#}", config(&pairs).unwrap_err());
            assert!(e.contains(says), "{k}={v}: {e}");
        }
        let e = config(&BASE[..2]).unwrap_err().to_string();
        assert!(e.contains("PAIL_TARGET is not set"), "{e}");
    }
}
