//! The HTTP API as one deployable: on AWS Lambda (behind a Function URL) when
//! `AWS_LAMBDA_RUNTIME_API` is set, otherwise a local server on `PAIL_LISTEN`
//! (default 127.0.0.1:8080). The store is `PAIL_STORE`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match pail_functions::http::host::run_from_env().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pail-http: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
