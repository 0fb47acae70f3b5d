//! The S3 settings pail takes from the environment, checked when the store is opened.
//!
//! object_store takes these strings as they are and builds request URLs from them later, so a
//! malformed value (an endpoint without a scheme, a port above 65535, a bracket left open) used
//! to panic inside it on the first request. Each value is checked here instead, and a bad one
//! is refused with one line naming the variable and what is wrong with it.

use std::time::Duration;

use crate::error::{Error, Result};

/// Default bound on one request (`PAIL_S3_TIMEOUT`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on connecting (`PAIL_S3_CONNECT_TIMEOUT`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Either timeout must lie within these.
const TIMEOUT_MIN: Duration = Duration::from_millis(10);
const TIMEOUT_MAX: Duration = Duration::from_secs(3600);
/// Retries of one request on 5xx/429/timeouts (`PAIL_S3_MAX_RETRIES`), and their ceiling.
const MAX_RETRIES: usize = 3;
const MAX_RETRIES_MAX: usize = 10;
/// S3 bucket names: 3 to 63 characters today, up to 255 for buckets made before 2018.
const BUCKET_CHARS_MIN: usize = 3;
const BUCKET_CHARS_MAX: usize = 255;
/// Region names: `us-east-1` on AWS; S3-compatible servers choose their own (`garage`).
const REGION_CHARS_MAX: usize = 64;

/// The variables that name the endpoint, strongest first (object_store's precedence).
const ENDPOINT_VARS: [&str; 3] = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"];
/// The variables that name the region, strongest first.
const REGION_VARS: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];
/// Boolean variables object_store reads from the environment.
const BOOLEAN_VARS: [&str; 10] = [
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_S3_EXPRESS",
    "AWS_IMDSV1_FALLBACK",
    "AWS_UNSIGNED_PAYLOAD",
    "AWS_SKIP_SIGNATURE",
    "AWS_DISABLE_TAGGING",
    "AWS_DISABLE_BULK_DELETE",
    "AWS_REQUEST_PAYER",
    "AWS_SSE_BUCKET_KEY_ENABLED",
];

/// The checked settings of one S3 store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Settings {
    /// The endpoint, normalised (`http://127.0.0.1:9000`); `None` for AWS.
    pub endpoint: Option<String>,
    pub allow_http: bool,
    /// The region from the environment, if it names one.
    pub region: Option<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: usize,
}

/// Reads one variable; `None` when unset.
pub(super) type Lookup<'a> = &'a dyn Fn(&str) -> Option<std::result::Result<String, String>>;

/// The process environment, as a [`Lookup`]: a value that is not UTF-8 is an error.
pub(super) fn process_env(name: &str) -> Option<std::result::Result<String, String>> {
    std::env::var_os(name).map(|v| {
        v.into_string()
            .map_err(|v| v.to_string_lossy().into_owned())
    })
}

impl Settings {
    pub fn from_env(env: Lookup<'_>) -> Result<Settings> {
        let var = |name: &str| -> Result<Option<String>> {
            match env(name) {
                None => Ok(None),
                Some(Ok(v)) => Ok(Some(v)),
                Some(Err(lossy)) => Err(bad(name, &lossy, "is not valid UTF-8")),
            }
        };
        let mut booleans = Vec::new();
        for name in BOOLEAN_VARS {
            if let Some(v) = var(name)? {
                booleans.push((name, boolean(name, &v)?));
            }
        }
        let allow_http = booleans
            .iter()
            .find(|(name, _)| *name == "AWS_ALLOW_HTTP")
            .is_some_and(|(_, on)| *on);
        let mut endpoint = None;
        for name in ENDPOINT_VARS {
            if let Some(v) = var(name)? {
                let checked = check_endpoint(name, &v, allow_http)?;
                endpoint.get_or_insert(checked);
            }
        }
        let mut region = None;
        for name in REGION_VARS {
            if let Some(v) = var(name)? {
                check_region(name, &v)?;
                region.get_or_insert(v);
            }
        }
        Ok(Settings {
            endpoint,
            allow_http,
            region,
            timeout: timeout("PAIL_S3_TIMEOUT", var("PAIL_S3_TIMEOUT")?, REQUEST_TIMEOUT)?,
            connect_timeout: timeout(
                "PAIL_S3_CONNECT_TIMEOUT",
                var("PAIL_S3_CONNECT_TIMEOUT")?,
                CONNECT_TIMEOUT,
            )?,
            max_retries: max_retries(var("PAIL_S3_MAX_RETRIES")?)?,
        })
    }
}

fn bad(name: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{name}={value:?} {why}"))
}

/// A boolean as object_store spells them.
fn boolean(name: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" | "y" => Ok(true),
        "0" | "false" | "off" | "no" | "n" => Ok(false),
        _ => Err(bad(name, v, "is not a boolean: use true or false")),
    }
}

/// Checks an endpoint URL and returns it normalised (no trailing slash, ASCII host).
fn check_endpoint(name: &str, v: &str, allow_http: bool) -> Result<String> {
    let example = "as in http://127.0.0.1:9000 or https://s3.example.com";
    if v.trim().is_empty() {
        return Err(bad(
            name,
            v,
            format!("is empty: unset it to use AWS, or give the endpoint's URL, {example}"),
        ));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(name, v, "contains spaces or control characters"));
    }
    if !v.contains("://") {
        return Err(bad(
            name,
            v,
            format!("has no scheme: write http://{v} or https://{v}"),
        ));
    }
    let url = url::Url::parse(v).map_err(|e| bad(name, v, format!("is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(bad(
                name,
                v,
                "is plain HTTP: set AWS_ALLOW_HTTP=true to allow it, or use https://",
            ));
        }
        other => {
            return Err(bad(
                name,
                v,
                format!("has scheme {other}: use http:// or https://"),
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(name, v, format!("has no host, {example}")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            name,
            v,
            "holds credentials: give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            name,
            v,
            "has a query or fragment: give only scheme, host, port and path",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// A region name: it becomes part of AWS host names and of every request's signature.
pub(super) fn check_region(name: &str, v: &str) -> Result<()> {
    let valid = (1..=REGION_CHARS_MAX).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(bad(
            name,
            v,
            format!(
                "is not a region name: 1 to {REGION_CHARS_MAX} letters, digits, '-', '_' or '.', as in us-east-1"
            ),
        ));
    }
    Ok(())
}

/// A bucket name: it becomes part of every request URL.
pub(super) fn check_bucket(url: &str, bucket: &str) -> Result<()> {
    let valid = (BUCKET_CHARS_MIN..=BUCKET_CHARS_MAX).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(Error::InvalidStoreUrl {
            url: url.to_string(),
            reason: format!(
                "bucket {bucket:?} is not a bucket name: {BUCKET_CHARS_MIN} to {BUCKET_CHARS_MAX} letters, digits, '-', '_' or '.'"
            ),
        });
    }
    Ok(())
}

fn timeout(name: &str, v: Option<String>, default: Duration) -> Result<Duration> {
    let Some(v) = v else {
        return Ok(default);
    };
    let d = humantime::parse_duration(v.trim()).map_err(|e| {
        bad(
            name,
            &v,
            format!("is not a duration ({e}): write it as in 30s or 500ms"),
        )
    })?;
    if !(TIMEOUT_MIN..=TIMEOUT_MAX).contains(&d) {
        return Err(bad(
            name,
            &v,
            format!(
                "is out of range: from {} to {}",
                humantime::format_duration(TIMEOUT_MIN),
                humantime::format_duration(TIMEOUT_MAX)
            ),
        ));
    }
    Ok(d)
}

fn max_retries(v: Option<String>) -> Result<usize> {
    let name = "PAIL_S3_MAX_RETRIES";
    let Some(v) = v else {
        return Ok(MAX_RETRIES);
    };
    match v.trim().parse::<usize>() {
        Ok(n) if n <= MAX_RETRIES_MAX => Ok(n),
        _ => Err(bad(
            name,
            &v,
            format!("is not a number from 0 to {MAX_RETRIES_MAX}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| Ok(v.to_string()))
        };
        Settings::from_env(&lookup)
    }

    /// The one-line error for `vars`, checked to name `var`.
    fn refused(vars: &[(&str, &str)], var: &str) -> String {
        let err = settings(vars).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(var), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        text
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let s = settings(&[]).unwrap();
        assert_eq!(
            s,
            Settings {
                endpoint: None,
                allow_http: false,
                region: None,
                timeout: REQUEST_TIMEOUT,
                connect_timeout: CONNECT_TIMEOUT,
                max_retries: MAX_RETRIES,
            }
        );
    }

    #[test]
    fn good_values_are_taken_and_the_endpoint_normalised() {
        let s = settings(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"),
            ("AWS_ALLOW_HTTP", "TRUE"),
            ("AWS_REGION", "eu-west-3"),
            ("PAIL_S3_TIMEOUT", "1m 30s"),
            ("PAIL_S3_CONNECT_TIMEOUT", "500ms"),
            ("PAIL_S3_MAX_RETRIES", "0"),
        ])
        .unwrap();
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s.allow_http);
        assert_eq!(s.region.as_deref(), Some("eu-west-3"));
        assert_eq!(s.timeout, Duration::from_secs(90));
        assert_eq!(s.connect_timeout, Duration::from_millis(500));
        assert_eq!(s.max_retries, 0);
        let v6 = settings(&[("AWS_ENDPOINT_URL", "https://[::1]:9000")]).unwrap();
        assert_eq!(v6.endpoint.as_deref(), Some("https://[::1]:9000"));
        let s3_first = settings(&[
            ("AWS_ENDPOINT_URL", "https://a.example"),
            ("AWS_ENDPOINT_URL_S3", "https://b.example"),
        ])
        .unwrap();
        assert_eq!(s3_first.endpoint.as_deref(), Some("https://b.example"));
    }

    #[test]
    fn every_malformed_endpoint_is_refused_naming_the_variable() {
        let http = ("AWS_ALLOW_HTTP", "true");
        for (value, why) in [
            (
                "127.0.0.1:9000",
                "has no scheme: write http://127.0.0.1:9000",
            ),
            ("", "is empty"),
            ("   ", "is empty"),
            ("http://", "is not a URL: empty host"),
            ("http://127.0.0.1:65536", "invalid port number"),
            ("http://127.0.0.1:99999", "invalid port number"),
            ("http://[::1", "invalid IPv6 address"),
            ("http://exa mple.com", "spaces"),
            ("ftp://host", "has scheme ftp"),
            ("http://user:pw@host", "holds credentials"),
            ("http://host:9000/?x=1", "has a query"),
        ] {
            for name in ENDPOINT_VARS {
                let text = refused(&[http, (name, value)], name);
                assert!(text.contains(why), "{value:?}: {text}");
            }
        }
        let text = refused(
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")],
            "AWS_ENDPOINT_URL",
        );
        assert!(text.contains("set AWS_ALLOW_HTTP=true"), "{text}");
        // A malformed endpoint is refused even where a stronger variable shadows it.
        refused(
            &[
                ("AWS_ENDPOINT_URL_S3", "https://ok.example"),
                ("AWS_ENDPOINT", "127.0.0.1:9000"),
            ],
            "AWS_ENDPOINT=",
        );
    }

    #[test]
    fn every_other_malformed_setting_is_refused_naming_the_variable() {
        for (name, value, why) in [
            ("AWS_ALLOW_HTTP", "maybe", "not a boolean"),
            ("AWS_S3_EXPRESS", "2", "not a boolean"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "", "not a boolean"),
            ("AWS_REGION", "", "not a region name"),
            ("AWS_REGION", "us east 1", "not a region name"),
            ("AWS_DEFAULT_REGION", "eu/west", "not a region name"),
            ("PAIL_S3_TIMEOUT", "30", "not a duration"),
            ("PAIL_S3_TIMEOUT", "soon", "not a duration"),
            ("PAIL_S3_TIMEOUT", "0s", "out of range"),
            ("PAIL_S3_TIMEOUT", "2h", "out of range"),
            ("PAIL_S3_CONNECT_TIMEOUT", "-1s", "not a duration"),
            ("PAIL_S3_CONNECT_TIMEOUT", "1ms", "out of range"),
            ("PAIL_S3_MAX_RETRIES", "many", "not a number from 0 to 10"),
            ("PAIL_S3_MAX_RETRIES", "-1", "not a number"),
            ("PAIL_S3_MAX_RETRIES", "11", "not a number from 0 to 10"),
        ] {
            let text = refused(&[(name, value)], name);
            assert!(text.contains(why), "{name}={value:?}: {text}");
        }
        let not_utf8 = |name: &str| (name == "AWS_REGION").then(|| Err("us-\u{fffd}".to_string()));
        let err = Settings::from_env(&not_utf8).unwrap_err();
        assert!(err.to_string().contains("AWS_REGION"), "{err}");
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn bucket_names_that_cannot_be_in_a_url_are_refused() {
        for ok in ["pail-test", "my.bucket_01", "abc"] {
            check_bucket("s3://x", ok).unwrap();
        }
        for bad in ["ab", "my bucket", "bu[cket", "b?x", "b#x", "ä-bucket"] {
            let err = check_bucket(&format!("s3://{bad}"), bad).unwrap_err();
            assert!(err.to_string().contains("is not a bucket name"), "{err}");
        }
        check_bucket("s3://x", &"b".repeat(BUCKET_CHARS_MAX + 1)).unwrap_err();
    }
}
