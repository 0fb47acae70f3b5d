//! The consumer function on AWS Lambda, run by a schedule: each invocation consumes the group
//! `PAIL_GROUP` as the static member `PAIL_INSTANCE_ID` and hands records to `PAIL_TARGET`
//! until idle or the invocation's deadline, commits, and answers with what it did (see
//! `pail_functions::relay::function`). The client, its caches and the target's connections
//! live as long as the warm container.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use pail_core::Pail;
use pail_functions::http::host::{main_of, store_from_env};
use pail_functions::relay::function::{ConsumerFunction, FunctionConfig};
use serde_json::Value;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    main_of("pail-consumer", run()).await
}

async fn run() -> anyhow::Result<()> {
    let config = FunctionConfig::from_env()?;
    let function = ConsumerFunction::new(Pail::new(store_from_env().await?), config).await?;
    let function = &function;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let summary = function
            .invoke(ev.context.deadline)
            .await
            .map_err(|e| lambda_runtime::Error::from(format!("{e:#}")))?;
        tracing::info!(
            delivered = summary.delivered,
            dead_lettered = summary.dead_lettered,
            out_of_time = summary.out_of_time,
            "consumer run done"
        );
        serde_json::to_value(&summary).map_err(lambda_runtime::Error::from)
    }))
    .await
    .map_err(|e| anyhow::anyhow!("lambda runtime failed: {e}"))
}
