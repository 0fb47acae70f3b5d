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

mod bucket;
mod settings;

pub use bucket::NoSuchBucket;

use super::{Store, invalid_url};
use crate::error::Result;
use settings::{Settings, check_bucket, check_region, process_env};

/// The environment variables the S3 backend reads, for help texts.
pub const S3_ENV_VARS: &str = "AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, AWS_REGION, AWS_ACCESS_KEY_ID, \
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, PAIL_S3_TIMEOUT, PAIL_S3_CONNECT_TIMEOUT, \
PAIL_S3_MAX_RETRIES";

/// The total time the retries of one request may take.
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// Refresh temporary credentials this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Opens `s3://bucket/prefix` (`rest` is what follows the scheme). Every setting is checked
/// here, before any request, so a malformed one is a clear error and never a panic later.
pub(super) async fn open(url: &str, rest: &str) -> Result<Store> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid_url(
            url,
            "no bucket: use s3://bucket or s3://bucket/prefix",
        ));
    }
    check_bucket(url, bucket)?;
    let settings = Settings::from_env(&process_env)?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let millis = |d: Duration| format!("{}ms", d.as_millis());
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_allow_http(settings.allow_http)
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            millis(settings.timeout),
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            millis(settings.connect_timeout),
        );
    if let Some(endpoint) = &settings.endpoint {
        // Both keys, so the checked form is used whichever variable object_store read.
        builder = builder
            .with_endpoint(endpoint)
            .with_config(AmazonS3ConfigKey::S3Endpoint, endpoint);
    }
    let region = match (&settings.region, sdk.region()) {
        (Some(region), _) => region.clone(),
        (None, Some(region)) => {
            // From an AWS profile (~/.aws/config): checked like the variables.
            check_region("the region of the AWS profile", region.as_ref())?;
            builder = builder.with_region(region.to_string());
            region.to_string()
        }
        (None, None) => "us-east-1".to_string(),
    };
    if let Some(provider) = sdk.credentials_provider() {
        builder = builder.with_credentials(Arc::new(AwsConfigCredentials::new(provider)));
    }
    let retry = RetryConfig {
        max_retries: settings.max_retries,
        retry_timeout: RETRY_TIMEOUT,
        ..RetryConfig::default()
    };
    let s3 = builder
        .with_retry(retry)
        .build()
        .map_err(|e| invalid_url(url, &e.to_string()))?;
    let endpoint = settings
        .endpoint
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let s3: Arc<dyn ObjectStore> =
        Arc::new(bucket::BucketCheck::new(Arc::new(s3), bucket, &endpoint));
    let inner: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
        "" => s3,
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
