//! AWS Signature Version 4 for the consumer function's calls to Lambda's Invoke API, through
//! `aws-sigv4` (the crate the AWS SDKs sign with, already built for `aws-config`). The test
//! vectors below were computed independently with botocore, so a change in how the request is
//! put together (path encoding, signed headers, the session token) fails them.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use std::time::SystemTime;

/// The headers that sign a `method` request to `url` with `body` for `service` in `region` at
/// `time`: `authorization`, `x-amz-date`, and `x-amz-security-token` for temporary
/// credentials. Only `host` and those are signed, so other headers may be added freely.
pub fn signed_headers(
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
    method: &str,
    url: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let request = SignableRequest::new(method, url, std::iter::empty(), SignableBody::Bytes(body))
        .map_err(|e| format!("cannot sign a request to {url}: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("cannot sign a request to {url}: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2015-08-30T12:36:00Z, the time of AWS's published SigV4 test suite.
    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn signed(token: Option<&str>, url: &str) -> Vec<(String, String)> {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        );
        signed_headers(
            &creds,
            "us-east-1",
            "lambda",
            at(),
            "POST",
            url,
            br#"{"records":[]}"#,
        )
        .unwrap()
    }

    #[test]
    fn an_invoke_request_is_signed_as_botocore_signs_it() {
        let h = signed(
            None,
            "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/biller/invocations",
        );
        assert_eq!(header(&h, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=e353f2b85109358fc7f67954b1309e0bec754d4e1559b0a2f49cf0b8d1fa53a5"
            )
        );
        assert_eq!(header(&h, "x-amz-security-token"), None);
    }

    #[test]
    fn an_encoded_arn_and_a_session_token_are_signed_as_botocore_signs_them() {
        let h = signed(
            Some("SESSIONTOKEN"),
            "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/\
             arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Abiller%3Alive/invocations",
        );
        assert_eq!(header(&h, "x-amz-security-token"), Some("SESSIONTOKEN"));
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-amz-security-token, \
                 Signature=8da93cd8603ddfd709c387289e7ebe170a0d73a5f2bf276fd05c637c5b3b10b2"
            )
        );
    }
}
