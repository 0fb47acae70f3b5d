//! S3 and S3-compatible stores (AWS, MinIO, moto), configured the way AWS tools are.
//!
//! Endpoint, plain HTTP and region come from the standard variables (`AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, `AWS_REGION`) through object_store; credentials come from aws-config's
//! default chain (environment, profiles, SSO, web identity, ECS and Lambda roles, IMDS) through
//! [`AwsConfigCredentials`], because object_store has no adapter for aws-config. Every request
//! is bounded by timeouts, so a dead endpoint is an error, never a hang.

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsCredential};
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, CredentialProvider, ObjectStore, RetryConfig};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

use super::{Store, invalid_url};
use crate::error::Result;

/// The environment variables the S3 backend reads, for help texts.
pub const S3_ENV_VARS: &str = "AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, AWS_REGION, AWS_ACCESS_KEY_ID, \
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, PAIL_S3_TIMEOUT, PAIL_S3_CONNECT_TIMEOUT, \
PAIL_S3_MAX_RETRIES";

/// Default bound on one request (`PAIL_S3_TIMEOUT`, a duration such as `30s`).
const REQUEST_TIMEOUT: &str = "30s";
/// Default bound on connecting (`PAIL_S3_CONNECT_TIMEOUT`).
const CONNECT_TIMEOUT: &str = "5s";
/// Retries of one request on 5xx/429/timeouts (`PAIL_S3_MAX_RETRIES`), and the total time
/// they may take.
const MAX_RETRIES: usize = 3;
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// Refresh temporary credentials this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

pub(super) async fn open(url: &str, rest: &str) -> Result<Store> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid_url(
            url,
            "no bucket: use s3://bucket or s3://bucket/prefix",
        ));
    }
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            env("PAIL_S3_TIMEOUT", REQUEST_TIMEOUT),
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            env("PAIL_S3_CONNECT_TIMEOUT", CONNECT_TIMEOUT),
        );
    let no_region_env = std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none();
    if let (true, Some(region)) = (no_region_env, sdk.region()) {
        builder = builder.with_region(region.to_string());
    }
    if let Some(provider) = sdk.credentials_provider() {
        builder = builder.with_credentials(Arc::new(AwsConfigCredentials::new(provider)));
    }
    let max_retries = match std::env::var("PAIL_S3_MAX_RETRIES") {
        Ok(v) => v
            .parse()
            .map_err(|_| invalid_url(url, &format!("PAIL_S3_MAX_RETRIES={v:?} is not a number")))?,
        Err(_) => MAX_RETRIES,
    };
    let retry = RetryConfig {
        max_retries,
        retry_timeout: RETRY_TIMEOUT,
        ..RetryConfig::default()
    };
    let s3 = builder
        .with_retry(retry)
        .build()
        .map_err(|e| invalid_url(url, &e.to_string()))?;
    let inner: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
        "" => Arc::new(s3),
        p => Arc::new(PrefixStore::new(s3, p)),
    };
    Ok(Store::new(inner, true, url))
}

/// Where the credential cache reads the time; replaced in tests.
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// An object_store credential provider over any aws-config provider, caching the credential
/// until shortly before it expires. object_store asks for a credential on every request, while
/// aws-config providers may go to the network (STS, SSO, IMDS) on every call.
#[derive(Clone)]
pub struct AwsConfigCredentials {
    source: SharedCredentialsProvider,
    cached: Arc<Mutex<Option<Cached>>>,
    clock: WallClock,
}

#[derive(Clone)]
struct Cached {
    credential: Arc<AwsCredential>,
    expiry: Option<SystemTime>,
}

impl std::fmt::Debug for AwsConfigCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConfigCredentials")
            .finish_non_exhaustive()
    }
}

impl AwsConfigCredentials {
    pub fn new(source: SharedCredentialsProvider) -> Self {
        Self::with_clock(source, Arc::new(SystemTime::now))
    }

    pub fn with_clock(source: SharedCredentialsProvider, clock: WallClock) -> Self {
        AwsConfigCredentials {
            source,
            cached: Arc::new(Mutex::new(None)),
            clock,
        }
    }

    fn is_fresh(&self, cached: &Cached) -> bool {
        match cached.expiry {
            None => true,
            Some(expiry) => (self.clock)() + REFRESH_BEFORE_EXPIRY < expiry,
        }
    }
}

#[async_trait::async_trait]
impl CredentialProvider for AwsConfigCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        // One refresh at a time: concurrent requests wait for it instead of stampeding STS.
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| self.is_fresh(c)) {
            return Ok(Arc::clone(&c.credential));
        }
        // A failed early refresh may keep using a credential that has not expired yet.
        let still_valid = cached
            .as_ref()
            .filter(|c| c.expiry.is_some_and(|e| (self.clock)() < e))
            .map(|c| Arc::clone(&c.credential));
        match self.source.provide_credentials().await {
            Ok(creds) => {
                let credential = Arc::new(AwsCredential {
                    key_id: creds.access_key_id().to_string(),
                    secret_key: creds.secret_access_key().to_string(),
                    token: creds.session_token().map(str::to_string),
                });
                *cached = Some(Cached {
                    credential: Arc::clone(&credential),
                    expiry: creds.expiry(),
                });
                Ok(credential)
            }
            Err(e) => still_valid.ok_or_else(|| object_store::Error::Generic {
                store: "S3",
                source: format!("cannot load AWS credentials: {e}").into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::future;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A provider that hands out a new key each call, valid for one hour from the fake clock.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicU64>,
        now: Arc<AtomicU64>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(self.now.load(Ordering::SeqCst));
            future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("key{n}"),
                "secret",
                Some("token".into()),
                Some(now + Duration::from_secs(3600)),
                "test",
            )))
        }
    }

    #[tokio::test]
    async fn caches_until_shortly_before_expiry_then_refreshes() {
        let calls = Arc::new(AtomicU64::new(0));
        let now = Arc::new(AtomicU64::new(1_000_000));
        let source = SharedCredentialsProvider::new(Counting {
            calls: Arc::clone(&calls),
            now: Arc::clone(&now),
        });
        let clock_now = Arc::clone(&now);
        let clock: WallClock = Arc::new(move || {
            SystemTime::UNIX_EPOCH + Duration::from_secs(clock_now.load(Ordering::SeqCst))
        });
        let provider = AwsConfigCredentials::with_clock(source, clock);

        let first = provider.get_credential().await.unwrap();
        assert_eq!(first.key_id, "key0");
        assert_eq!(first.token.as_deref(), Some("token"));
        for _ in 0..10 {
            assert_eq!(provider.get_credential().await.unwrap().key_id, "key0");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "cached while fresh");

        // 56 minutes later the credential is within 5 minutes of expiry: refresh.
        now.fetch_add(56 * 60, Ordering::SeqCst);
        assert_eq!(provider.get_credential().await.unwrap().key_id, "key1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
