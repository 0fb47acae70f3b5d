//! A user's function for the consumer function's tests: a Lambda function (on the real
//! runtime, under `cargo lambda watch`) that takes the consumer function's batch event
//! `{"records": [...]}`, fails the invocation when a record's value is "poison", and otherwise
//! appends one line per record, `partition offset value`, to the file `PAIL_TEST_TARGET_LOG`.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::{Value, json};
use std::io::Write;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let log = std::env::var("PAIL_TEST_TARGET_LOG")?;
    let log = &log;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let records = ev.payload["records"]
            .as_array()
            .cloned()
            .ok_or("the event has no records array")?;
        if records.iter().any(|r| r["value"] == "poison") {
            return Err(lambda_runtime::Error::from("a poison record"));
        }
        let lines: String = records
            .iter()
            .map(|r| format!("{} {} {}\n", r["partition"], r["offset"], r["value"]))
            .collect();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        file.write_all(lines.as_bytes())?;
        Ok::<Value, lambda_runtime::Error>(json!({"processed": records.len()}))
    }))
    .await
}
