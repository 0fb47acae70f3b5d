//! Where the consumer function hands its batches: an HTTP endpoint (a POST of the batch), or a
//! Lambda function through the Invoke API (RequestResponse, signed with SigV4). Both get the
//! same body, `{"records": [...]}`, and each answer is sorted into what the loop does next:
//! delivered, rejected (counts towards the record's tries, then splitting and the dead-letter
//! topic), unavailable (retried with backoff; never the record's fault), or fatal (the run
//! stops without committing: a misconfiguration must not dead-letter a whole topic).

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

use super::sigv4;

/// Lambda's limit on a RequestResponse invocation's payload (6 MB, counted in bytes of JSON).
pub const LAMBDA_PAYLOAD_MAX: usize = 6 * 1024 * 1024;
/// Lambda's limit on the FunctionName of an Invoke (a name, a partial or a full ARN, with an
/// optional `:qualifier`).
const FUNCTION_NAME_MAX: usize = 170;
/// How long one POST to an HTTP target may take before it counts as unavailable.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one Invoke may take: Lambda's longest function timeout (15 minutes) and a little.
/// The run's deadline cuts it sooner on Lambda.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(15 * 60 + 10);
/// Temporary credentials are refreshed this long before they expire.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// A target as written on the command line or in `PAIL_TARGET`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    Http(String),
    /// `lambda:FUNCTION`: a name, partial or full ARN, with an optional `:qualifier`.
    Lambda(String),
}

impl TargetSpec {
    pub fn parse(spec: &str) -> Result<TargetSpec, String> {
        if spec.starts_with("http://") || spec.starts_with("https://") {
            return Ok(TargetSpec::Http(spec.to_string()));
        }
        let Some(function) = spec.strip_prefix("lambda:") else {
            return Err(format!(
                "a target is an http:// or https:// URL or lambda:FUNCTION, not {spec:?}"
            ));
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_:.$".contains(c);
        if function.is_empty()
            || function.len() > FUNCTION_NAME_MAX
            || !function.chars().all(allowed)
        {
            return Err(format!(
                "lambda:{function:?} does not name a function: a name, partial or full ARN of 1 \
                 to {FUNCTION_NAME_MAX} characters (letters, digits, - _ : . $), optionally \
                 ending in :qualifier"
            ));
        }
        Ok(TargetSpec::Lambda(function.to_string()))
    }
}

/// Why a delivery did not succeed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The target processed the batch and refused it (a non-2xx HTTP answer, a function error).
    Rejected(String),
    /// The target could not be reached or asked to be called later (throttling, 5xx of the
    /// Lambda service).
    Unavailable(String),
    /// Retrying cannot help (no such function, access denied).
    Fatal(String),
}

pub enum Target {
    Http { url: String, http: reqwest::Client },
    Lambda(LambdaTarget),
}

pub struct LambdaTarget {
    function: String,
    /// The Invoke URL: the endpoint and the function's path.
    url: String,
    region: String,
    provider: SharedCredentialsProvider,
    /// The last credentials, reused until shortly before they expire.
    cached: Mutex<Option<Credentials>>,
    http: reqwest::Client,
}

fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .context("building the HTTP client")
}

impl Target {
    /// The target `spec` names. A Lambda target takes its region and credentials from the AWS
    /// configuration (variables, profile, the function's role), and its endpoint from
    /// `endpoint`, else `AWS_ENDPOINT_URL_LAMBDA` or `AWS_ENDPOINT_URL` (as the AWS SDKs do),
    /// else the region's.
    pub async fn connect(spec: &TargetSpec, endpoint: Option<&str>) -> anyhow::Result<Target> {
        match spec {
            TargetSpec::Http(url) => Ok(Target::Http {
                url: url.clone(),
                http: http_client(HTTP_TIMEOUT)?,
            }),
            TargetSpec::Lambda(function) => Ok(Target::Lambda(
                LambdaTarget::connect(function, endpoint).await?,
            )),
        }
    }

    /// The largest body this target takes, if it has a limit.
    pub fn payload_max(&self) -> Option<usize> {
        match self {
            Target::Http { .. } => None,
            Target::Lambda(_) => Some(LAMBDA_PAYLOAD_MAX),
        }
    }

    pub async fn send(&self, body: &Bytes) -> Result<(), Failure> {
        match self {
            Target::Http { url, http } => send_http(http, url, body).await,
            Target::Lambda(l) => l.invoke(body).await,
        }
    }
}

/// The first 200 characters of an answer, for messages and dead-letter headers.
fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

async fn send_http(http: &reqwest::Client, url: &str, body: &Bytes) -> Result<(), Failure> {
    let reply = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .map_err(|e| Failure::Unavailable(format!("the target did not answer: {e}")))?;
    let status = reply.status();
    if status.is_success() {
        return Ok(());
    }
    let text = excerpt(&reply.text().await.unwrap_or_default());
    let why = format!("the target answered {status}: {text}");
    // 429 and 503 say "later", not "this batch is wrong".
    if status.as_u16() == 429 || status.as_u16() == 503 {
        Err(Failure::Unavailable(why))
    } else {
        Err(Failure::Rejected(why))
    }
}

/// `s` as one path segment: everything but unreserved characters percent-encoded (an ARN's
/// colons, `$LATEST`'s dollar).
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Lambda endpoint: `explicit`, else the variables the AWS SDKs read, else the region's.
fn lambda_endpoint(explicit: Option<&str>, region: &str) -> String {
    let from_env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    explicit
        .map(str::to_string)
        .or_else(|| from_env("AWS_ENDPOINT_URL_LAMBDA"))
        .or_else(|| from_env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://lambda.{region}.amazonaws.com"))
        .trim_end_matches('/')
        .to_string()
}

impl LambdaTarget {
    async fn connect(function: &str, endpoint: Option<&str>) -> anyhow::Result<LambdaTarget> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let region = sdk
            .region()
            .context("no AWS region for the Lambda target: set AWS_REGION")?
            .to_string();
        let provider = sdk
            .credentials_provider()
            .context("no AWS credentials for the Lambda target")?;
        let url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            lambda_endpoint(endpoint, &region),
            path_segment(function)
        );
        Ok(LambdaTarget {
            function: function.to_string(),
            url,
            region,
            provider,
            cached: Mutex::new(None),
            http: http_client(INVOKE_TIMEOUT)?,
        })
    }

    async fn credentials(&self) -> Result<Credentials, Failure> {
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|at| at > SystemTime::now() + CREDENTIALS_MARGIN)
        };
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| Failure::Unavailable(format!("no AWS credentials: {e}")))?;
        *cached = Some(c.clone());
        Ok(c)
    }

    /// One synchronous invocation with `body` as the event.
    async fn invoke(&self, body: &Bytes) -> Result<(), Failure> {
        let credentials = self.credentials().await?;
        let signed = sigv4::signed_headers(
            &credentials,
            &self.region,
            "lambda",
            SystemTime::now(),
            "POST",
            &self.url,
            body,
        )
        .map_err(Failure::Fatal)?;
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.clone());
        for (k, v) in signed {
            request = request.header(k, v);
        }
        let reply = request.send().await.map_err(|e| {
            Failure::Unavailable(format!("Lambda did not answer for {}: {e}", self.function))
        })?;
        let status = reply.status();
        let function_error = reply
            .headers()
            .get("x-amz-function-error")
            .map(|v| v.to_str().unwrap_or("?").to_string());
        let text = reply.text().await.unwrap_or_default();
        classify(&self.function, status.as_u16(), function_error, &text)
    }
}

/// What an Invoke answer means for the batch.
fn classify(
    function: &str,
    status: u16,
    function_error: Option<String>,
    payload: &str,
) -> Result<(), Failure> {
    let text = excerpt(payload);
    // Lambda answers a function's error with 200 and X-Amz-Function-Error; `cargo lambda
    // watch` with 500 and the runtime's error object.
    if let Some(kind) = function_error {
        return Err(Failure::Rejected(format!(
            "{function} failed ({kind}): {text}"
        )));
    }
    if is_error_payload(payload) {
        return Err(Failure::Rejected(format!("{function} failed: {text}")));
    }
    match status {
        200..=299 => Ok(()),
        // RequestTooLargeException: the batch, not the function, is the problem.
        413 => Err(Failure::Rejected(format!(
            "Lambda refused the batch for {function} as too large: {text}"
        ))),
        429 | 500..=599 => Err(Failure::Unavailable(format!(
            "Lambda answered {status} for {function}: {text}"
        ))),
        _ => Err(Failure::Fatal(format!(
            "Lambda answered {status} for {function}: {text}"
        ))),
    }
}

/// Whether a 200's payload is the error object Lambda runtimes report a failed invocation
/// with (`{"errorType": ..., "errorMessage": ...}`); the service's own errors are shaped
/// `{"Type": ..., "message": ...}`.
fn is_error_payload(payload: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(payload).is_ok_and(|v| {
        v.as_object().is_some_and(|o| {
            o.len() <= 3 && o.contains_key("errorType") && o.contains_key("errorMessage")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_say_what_a_target_is() {
        assert_eq!(
            TargetSpec::parse("lambda:arn:aws:lambda:eu-west-1:123456789012:function:f:live"),
            Ok(TargetSpec::Lambda(
                "arn:aws:lambda:eu-west-1:123456789012:function:f:live".into()
            ))
        );
        assert_eq!(
            TargetSpec::parse("https://x/y"),
            Ok(TargetSpec::Http("https://x/y".into()))
        );
        for bad in [
            "localhost:80",
            "lambda:",
            "lambda:a/b",
            &format!("lambda:{}", "f".repeat(171)),
        ] {
            assert!(TargetSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_qualified_arn_is_one_encoded_path_segment() {
        assert_eq!(
            path_segment("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"),
            "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af%3A%24LATEST"
        );
    }

    #[test]
    fn invoke_answers_are_sorted_by_what_retrying_can_do() {
        let c = |s, e: Option<&str>, p| classify("f", s, e.map(str::to_string), p);
        assert_eq!(c(200, None, r#"{"ok":true}"#), Ok(()));
        assert_eq!(c(200, None, "null"), Ok(()));
        assert!(matches!(
            c(200, Some("Unhandled"), "{}"),
            Err(Failure::Rejected(_))
        ));
        assert!(matches!(
            c(200, None, r#"{"errorType":"Boom","errorMessage":"no"}"#),
            Err(Failure::Rejected(_))
        ));
        let emulated = r#"{"errorType":"Boom","errorMessage":"no"}"#;
        assert!(matches!(c(500, None, emulated), Err(Failure::Rejected(_))));
        let service = r#"{"Type":"Service","message":"try later"}"#;
        assert!(matches!(
            c(500, None, service),
            Err(Failure::Unavailable(_))
        ));
        assert!(matches!(c(413, None, ""), Err(Failure::Rejected(_))));
        assert!(matches!(c(429, None, ""), Err(Failure::Unavailable(_))));
        assert!(matches!(c(502, None, ""), Err(Failure::Unavailable(_))));
        assert!(matches!(c(404, None, ""), Err(Failure::Fatal(_))));
        assert!(matches!(c(403, None, ""), Err(Failure::Fatal(_))));
    }
}
