//! The scheduled maintenance function: one `Pail::maintain` pass over every topic of
//! `PAIL_STORE` per invocation (retention, compaction, cleanup of replaced and abandoned
//! objects), answering with what it did per partition. Two passes at once are safe, so an
//! overlapping schedule or a retry needs no lock.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use pail_core::Pail;
use pail_core::maintain::MaintainOptions;
use pail_functions::http::host::{main_of, store_from_env};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    main_of("pail-maintain", run()).await
}

async fn run() -> anyhow::Result<()> {
    let pail = Pail::new(store_from_env().await?);
    let pail = &pail;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let reports = pail
            .maintain(None, MaintainOptions::default())
            .await
            .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
        let touched: Vec<_> = reports
            .iter()
            .filter(|r| {
                r.dropped_segments > 0
                    || !r.merged.is_empty()
                    || r.deleted_objects > 0
                    || r.skipped.is_some()
            })
            .collect();
        tracing::info!(
            partitions = reports.len(),
            changed = touched.len(),
            "maintenance pass done"
        );
        Ok::<Value, lambda_runtime::Error>(json!({"partitions": reports.len(), "changed": touched}))
    }))
    .await
    .map_err(|e| anyhow::anyhow!("lambda runtime failed: {e}"))
}
