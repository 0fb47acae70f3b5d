//! The event ingestion function: SQS batches (with partial-batch failures), EventBridge events
//! and S3 notifications appended to `PAIL_INGEST_TOPIC` on `PAIL_STORE` (see
//! `pail_functions::ingest`). The client and its caches live as long as the warm container.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use pail_core::Pail;
use pail_functions::http::host::{main_of, store_from_env};
use pail_functions::ingest::{self, IngestConfig};
use serde_json::Value;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    main_of("pail-ingest", run()).await
}

async fn run() -> anyhow::Result<()> {
    let pail = Pail::new(store_from_env().await?);
    let cfg = IngestConfig::from_env()?;
    let (pail, cfg) = (&pail, &cfg);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let deadline = Some(ingest::deadline_of(ev.context.deadline));
        ingest::handle(pail, cfg, ev.payload, deadline)
            .await
            .map_err(|e| lambda_runtime::Error::from(format!("{e:#}")))
    }))
    .await
    .map_err(|e| anyhow::anyhow!("lambda runtime failed: {e}"))
}
