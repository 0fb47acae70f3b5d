//! The two hosts of the one router: a local socket (`pail serve`, `axum::serve`) and AWS
//! Lambda (`lambda_http::run`), chosen by whether `AWS_LAMBDA_RUNTIME_API` is set.
//!
//! Either way the process builds one [`AppState`] (one `Pail` client, its caches and metrics)
//! and serves every request with it: a warm Lambda instance reuses it across invocations.

use anyhow::Context;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;

use super::auth::Token;
use super::{AppState, router};
use pail_core::Store;

/// Set by the Lambda service (and by `cargo lambda watch`) in a function's environment.
pub const LAMBDA_RUNTIME_API_VAR: &str = "AWS_LAMBDA_RUNTIME_API";
/// The bearer token `pail serve` requires, when set.
pub const TOKEN_VAR: &str = "PAIL_TOKEN";
/// `json` for one JSON object per log line (the default on Lambda), anything else for text.
pub const LOG_FORMAT_VAR: &str = "PAIL_LOG_FORMAT";
/// Where `pail-http` listens when it is not on Lambda.
pub const LISTEN_VAR: &str = "PAIL_LISTEN";
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8080";

/// True inside a Lambda execution environment.
pub fn on_lambda() -> bool {
    std::env::var_os(LAMBDA_RUNTIME_API_VAR).is_some_and(|v| !v.is_empty())
}

/// The token from `PAIL_TOKEN`, if set and not empty.
pub fn token_from_env() -> Option<Token> {
    std::env::var(TOKEN_VAR).ok().and_then(|t| Token::new(&t))
}

/// Structured logs on stderr: JSON on Lambda (CloudWatch filters on fields) or when
/// `PAIL_LOG_FORMAT=json`, text otherwise. The level comes from `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = on_lambda() || std::env::var(LOG_FORMAT_VAR).is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests) finds a subscriber installed; keeping the first is fine.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Refuses to expose an unauthenticated server beyond this machine.
pub fn check_exposure(listen: &SocketAddr, token: Option<&Token>) -> anyhow::Result<()> {
    if token.is_none() && !listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {listen} without {TOKEN_VAR}: set {TOKEN_VAR} to require a \
             bearer token, or listen on a loopback address such as 127.0.0.1"
        );
    }
    Ok(())
}

/// Serves the API on `listen` until SIGINT or SIGTERM; in-flight requests finish first (a
/// long poll within its bounded wait).
pub async fn serve(store: &Store, listen: SocketAddr, token: Option<Token>) -> anyhow::Result<()> {
    check_exposure(&listen, token.as_ref())?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    if token.is_none() {
        tracing::warn!("no {TOKEN_VAR} set: serving without authentication, on loopback only");
    }
    // A plain line, so scripts started with port 0 can read the port.
    eprintln!("pail serve: listening on http://{bound}");
    let app = router(AppState::new(store), token);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing work in flight");
}

/// Runs the API as a Lambda function: one invocation per request, the same router and state
/// for every invocation of this instance. Authentication is the Function URL's IAM check, plus
/// the bearer token when `PAIL_TOKEN` is set.
pub async fn run_lambda(store: &Store) -> anyhow::Result<()> {
    let app = router(AppState::new(store), token_from_env());
    lambda_http::run(app)
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime failed: {e}"))
}

/// A function binary's `main`: logging set up, then `run`; a failure is one line on stderr and
/// a failing exit code (Lambda reports it as an init error).
pub async fn main_of(
    name: &str,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    init_logging();
    match run.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The store every function runs on: `PAIL_STORE`.
pub async fn store_from_env() -> anyhow::Result<Store> {
    let url = std::env::var("PAIL_STORE")
        .ok()
        .filter(|s| !s.is_empty())
        .context("PAIL_STORE is not set: name the store, as in s3://bucket/prefix")?;
    Ok(Store::open(&url).await?)
}

/// The `pail-http` entry point: Lambda when `AWS_LAMBDA_RUNTIME_API` is set (lambda_http
/// panics without the Lambda variables, so this is decided first), else a local server on
/// `PAIL_LISTEN`. The store is `PAIL_STORE`.
pub async fn run_from_env() -> anyhow::Result<()> {
    init_logging();
    let store = store_from_env().await?;
    if on_lambda() {
        return run_lambda(&store).await;
    }
    let listen = std::env::var(LISTEN_VAR).unwrap_or_else(|_| LISTEN_DEFAULT.to_string());
    let listen: SocketAddr = listen.parse().with_context(|| {
        format!("{LISTEN_VAR}={listen:?} is not an address such as {LISTEN_DEFAULT}")
    })?;
    serve(&store, listen, token_from_env()).await
}

/// Deadlines below this (September 2001, in ms since the epoch) are not instants: `cargo
/// lambda watch` sends its invoke timeout itself (600000) where Lambda sends an instant.
const EPOCH_MS_PLAUSIBLE: u64 = 1_000_000_000_000;

/// The time from `now` to `deadline_ms`, less `margin`; zero when that is already past. A
/// deadline too small to be an instant is taken as the time left.
pub fn time_left(deadline_ms: u64, now: SystemTime, margin: Duration) -> Duration {
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let left = if deadline_ms < EPOCH_MS_PLAUSIBLE {
        deadline_ms
    } else {
        deadline_ms.saturating_sub(now_ms)
    };
    Duration::from_millis(left).saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_only_loopback_is_allowed() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(check_exposure(&addr("127.0.0.1:0"), None).is_ok());
        assert!(check_exposure(&addr("[::1]:80"), None).is_ok());
        let err = check_exposure(&addr("0.0.0.0:8080"), None).unwrap_err();
        assert!(err.to_string().contains("PAIL_TOKEN"), "{err}");
        assert!(check_exposure(&addr("192.0.2.1:8080"), None).is_err());
        let token = Token::new("t").unwrap();
        assert!(check_exposure(&addr("0.0.0.0:8080"), Some(&token)).is_ok());
    }

    #[test]
    fn the_margin_comes_off_the_remaining_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let s = Duration::from_secs;
        assert_eq!(time_left(1_796_000_060_000, now, s(5)), s(55));
        assert_eq!(time_left(1_796_000_003_000, now, s(5)), Duration::ZERO);
        assert_eq!(time_left(1_795_000_000_000, now, s(5)), Duration::ZERO);
        // The emulator's timeout in place of an instant.
        assert_eq!(time_left(600_000, now, s(5)), s(595));
    }
}
