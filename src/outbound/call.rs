//! One outbound request as its callers describe it (method, URL, JSON body, extra headers,
//! signed or not), turned into a hyper request at the moment it is sent.

use super::error::OutboundError;
use super::sign::{Secret, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use std::time::{SystemTime, UNIX_EPOCH};

/// `User-Agent` of bootd's outbound requests.
pub const USER_AGENT: &str = concat!("bootd/", env!("CARGO_PKG_VERSION"));

/// A request to send with `HttpClient::call`.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    method: Method,
    url: String,
    body: Bytes,
    user_agent: &'static str,
    headers: Vec<(&'static str, String)>,
    /// `Some`: stamped with `X-Bootd-Timestamp`, and signed when it holds a key.
    signing: Option<Option<&'a Secret>>,
}

impl<'a> Call<'a> {
    /// `POST url` with a JSON body.
    pub fn post_json(url: impl Into<String>, body: Bytes) -> Call<'a> {
        Call::new(Method::POST, url.into(), body).header("content-type", "application/json")
    }

    /// `GET url` without a body.
    pub fn get(url: impl Into<String>) -> Call<'a> {
        Call::new(Method::GET, url.into(), Bytes::new())
    }

    fn new(method: Method, url: String, body: Bytes) -> Call<'a> {
        Call {
            method,
            url,
            body,
            user_agent: USER_AGENT,
            headers: Vec::new(),
            signing: None,
        }
    }

    /// Adds a header (`name` in lower case).
    pub fn header(mut self, name: &'static str, value: impl ToString) -> Call<'a> {
        self.headers.push((name, value.to_string()));
        self
    }

    /// Replaces the default `User-Agent`.
    pub fn user_agent(mut self, agent: &'static str) -> Call<'a> {
        self.user_agent = agent;
        self
    }

    /// Stamps the request with `X-Bootd-Timestamp` and, given a key, signs timestamp and
    /// body into `X-Bootd-Signature` (unsigned requests keep the timestamp, as before).
    pub fn signed(mut self, secret: Option<&'a Secret>) -> Call<'a> {
        self.signing = Some(secret);
        self
    }

    /// The URL this call goes to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The hyper request, stamped with the current time.
    pub fn into_request(self) -> Result<Request<Full<Bytes>>, OutboundError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.into_request_at(now)
    }

    /// The hyper request as sent at `timestamp` (unix seconds).
    fn into_request_at(self, timestamp: u64) -> Result<Request<Full<Bytes>>, OutboundError> {
        let mut req = Request::builder()
            .method(self.method)
            .uri(self.url.as_str())
            .header(hyper::header::USER_AGENT, self.user_agent);
        for (name, value) in &self.headers {
            req = req.header(*name, value.as_str());
        }
        if let Some(secret) = self.signing {
            req = req.header(TIMESTAMP_HEADER, timestamp.to_string());
            if let Some(secret) = secret {
                req = req.header(SIGNATURE_HEADER, secret.sign(timestamp, &self.body));
            }
        }
        req.body(Full::new(self.body))
            .map_err(|e| OutboundError::Request {
                url: self.url,
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'r>(req: &'r Request<Full<Bytes>>, name: &str) -> Option<&'r str> {
        req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn signed_posts_carry_timestamp_signature_and_extra_headers() {
        let key = Secret::new(b"s3cret");
        let body = Bytes::from_static(b"{\"seq\":1}");
        let req = Call::post_json("http://127.0.0.1:9/events", body.clone())
            .header("x-bootd-event", 7)
            .signed(Some(&key))
            .into_request_at(1_700_000_000)
            .expect("request");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(header(&req, "x-bootd-timestamp"), Some("1700000000"));
        let sig = header(&req, "x-bootd-signature").expect("signed");
        assert!(key.verify(1_700_000_000, &body, sig), "{sig}");
        assert_eq!(header(&req, "x-bootd-event"), Some("7"));
        assert_eq!(header(&req, "content-type"), Some("application/json"));
        assert_eq!(header(&req, "user-agent"), Some(USER_AGENT));
    }

    #[test]
    fn unsigned_calls_keep_the_timestamp_and_plain_gets_have_neither() {
        let req = Call::post_json("http://h/x", Bytes::new())
            .signed(None)
            .into_request_at(5)
            .expect("request");
        assert_eq!(header(&req, "x-bootd-timestamp"), Some("5"));
        assert_eq!(header(&req, "x-bootd-signature"), None);

        let req = Call::get("http://h/health")
            .user_agent("bootd-health/1")
            .into_request_at(5)
            .expect("request");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(header(&req, "x-bootd-timestamp"), None);
        assert_eq!(header(&req, "user-agent"), Some("bootd-health/1"));
    }

    #[test]
    fn a_bad_url_is_a_request_error() {
        let err = Call::get("http://exa mple/")
            .into_request()
            .expect_err("bad url");
        assert!(
            matches!(&err, OutboundError::Request { url, .. } if url == "http://exa mple/"),
            "{err}"
        );
    }
}
