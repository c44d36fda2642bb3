//! Signature schemes: the headers that prove a delivery came from us, in the
//! form an endpoint's receiver already verifies (Standard Webhooks, GitHub,
//! Stripe, or a plain hex HMAC in a header of its choice).
//!
//! Key bytes: `standard` keys its HMAC with the base64-decoded part of a
//! `whsec_…` secret, as Standard Webhooks defines. Every other scheme keys
//! it with the secret string exactly as configured (its ASCII bytes, a
//! `whsec_` prefix included), as GitHub, Stripe and most in-house systems do.

use crate::core::secrets::signing::{hmac_sha256, Secret};

/// The header a `hex` endpoint signs in when it names none.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Webhook-Signature";
const GITHUB_HEADER: &str = "X-Hub-Signature-256";
const STRIPE_HEADER: &str = "Stripe-Signature";
const MAX_PLAIN_SECRET: usize = 255;
const SHA256_PREFIX: &str = "sha256=";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeName {
    Standard,
    GitHub,
    Stripe,
    Hex,
}

impl SchemeName {
    pub const ALL: [SchemeName; 4] = [
        SchemeName::Standard,
        SchemeName::GitHub,
        SchemeName::Stripe,
        SchemeName::Hex,
    ];

    pub fn parse(name: &str) -> Result<SchemeName, String> {
        match name {
            "standard" => Ok(SchemeName::Standard),
            "github" => Ok(SchemeName::GitHub),
            "stripe" => Ok(SchemeName::Stripe),
            "hex" => Ok(SchemeName::Hex),
            _ => Err("must be one of standard, github, stripe, hex".to_owned()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SchemeName::Standard => "standard",
            SchemeName::GitHub => "github",
            SchemeName::Stripe => "stripe",
            SchemeName::Hex => "hex",
        }
    }
}

/// An endpoint's signature settings as stored. `header` and
/// `sha256_prefix` shape the `hex` scheme only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureSettings {
    pub scheme: SchemeName,
    pub header: String,
    pub sha256_prefix: bool,
}

/// A secret used verbatim as the HMAC key.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainSecret(String);

impl PlainSecret {
    /// Printable ASCII only, so that the key bytes are the same whatever
    /// encoding the receiver's configuration is read in.
    pub fn parse(secret: &str) -> Result<PlainSecret, String> {
        let printable = |c: char| (' '..='~').contains(&c);
        if secret.is_empty() || secret.len() > MAX_PLAIN_SECRET || !secret.chars().all(printable) {
            return Err(format!(
                "must be 1 to {MAX_PLAIN_SECRET} printable ASCII characters"
            ));
        }
        Ok(PlainSecret(secret.to_owned()))
    }

    fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainSecret(..)")
    }
}

/// What is signed in one attempt.
#[derive(Debug, Clone, Copy)]
pub struct SignedMessage<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// Unix seconds of the attempt.
    pub timestamp: i64,
    pub body: &'a [u8],
}

/// Signs an endpoint's deliveries; holds a secret valid for its scheme.
#[derive(Debug, Clone)]
pub enum Signer {
    Standard(Secret),
    GitHub(PlainSecret),
    Stripe(PlainSecret),
    Hex {
        secret: PlainSecret,
        header: String,
        sha256_prefix: bool,
    },
}

impl Signer {
    /// The signer for `settings`, or why `secret` cannot key it.
    pub fn new(settings: &SignatureSettings, secret: &str) -> Result<Signer, String> {
        Ok(match settings.scheme {
            SchemeName::Standard => Signer::Standard(Secret::parse(secret).map_err(|e| {
                format!("{e} (signature_scheme standard takes a whsec_<base64> secret)")
            })?),
            SchemeName::GitHub => Signer::GitHub(PlainSecret::parse(secret)?),
            SchemeName::Stripe => Signer::Stripe(PlainSecret::parse(secret)?),
            SchemeName::Hex => Signer::Hex {
                secret: PlainSecret::parse(secret)?,
                header: settings.header.clone(),
                sha256_prefix: settings.sha256_prefix,
            },
        })
    }

    /// The headers to add to an attempt carrying `message`.
    pub fn headers(&self, message: &SignedMessage<'_>) -> Vec<(String, String)> {
        let header = |name: &str, value: String| (name.to_owned(), value);
        match self {
            Signer::Standard(secret) => vec![
                header("webhook-id", message.event_id.to_owned()),
                header("webhook-timestamp", message.timestamp.to_string()),
                header(
                    "webhook-signature",
                    secret.sign(message.event_id, message.timestamp, message.body),
                ),
                header("webhook-event-type", message.event_type.to_owned()),
            ],
            Signer::GitHub(secret) => vec![header(
                GITHUB_HEADER,
                format!(
                    "{SHA256_PREFIX}{}",
                    hex(&hmac_sha256(secret.key(), &[message.body]))
                ),
            )],
            Signer::Stripe(secret) => vec![header(
                STRIPE_HEADER,
                format!(
                    "t={},v1={}",
                    message.timestamp,
                    stripe_v1(secret, message.timestamp, message.body)
                ),
            )],
            Signer::Hex {
                secret,
                header: name,
                sha256_prefix,
            } => {
                let prefix = if *sha256_prefix { SHA256_PREFIX } else { "" };
                let mac = hmac_sha256(secret.key(), &[message.body]);
                vec![header(name, format!("{prefix}{}", hex(&mac)))]
            }
        }
    }

    /// Whether this signer sets header `name` (any case), which an
    /// endpoint's custom headers then may not repeat.
    pub fn sets_header(&self, name: &str) -> bool {
        let own = match self {
            // Standard Webhooks' headers are all `webhook-…`, which no custom
            // header may use.
            Signer::Standard(_) => return false,
            Signer::GitHub(_) => GITHUB_HEADER,
            Signer::Stripe(_) => STRIPE_HEADER,
            Signer::Hex { header, .. } => header.as_str(),
        };
        own.eq_ignore_ascii_case(name)
    }
}

/// A secret replaced by a rotation, still signing until `expires_at_ms`.
#[derive(Debug, Clone)]
pub struct PreviousSigner {
    pub signer: Signer,
    pub expires_at_ms: i64,
}

/// What signs an endpoint's deliveries: its secret and, during a
/// rotation's grace period, the secret it replaced.
///
/// Both sign where the scheme carries several signatures: `standard`
/// (space-separated `v1,` entries in `webhook-signature`, as Standard
/// Webhooks defines) and `stripe` (several `v1=` entries in
/// `Stripe-Signature`, as Stripe sends during its own rotations). `github`
/// and `hex` receivers take a single signature: only the new secret signs.
#[derive(Debug, Clone)]
pub struct Signing {
    pub current: Signer,
    pub previous: Option<PreviousSigner>,
}

impl Signing {
    /// The headers of an attempt carrying `message`, made at `now_ms`.
    pub fn headers(&self, message: &SignedMessage<'_>, now_ms: i64) -> Vec<(String, String)> {
        let mut headers = self.current.headers(message);
        let Some(previous) = self
            .previous
            .as_ref()
            .filter(|previous| now_ms < previous.expires_at_ms)
        else {
            return headers;
        };
        let (name, extra) = match (&self.current, &previous.signer) {
            (Signer::Standard(_), Signer::Standard(old)) => (
                "webhook-signature",
                format!(
                    " {}",
                    old.sign(message.event_id, message.timestamp, message.body)
                ),
            ),
            (Signer::Stripe(_), Signer::Stripe(old)) => (
                STRIPE_HEADER,
                format!(",v1={}", stripe_v1(old, message.timestamp, message.body)),
            ),
            _ => return headers,
        };
        if let Some((_, value)) = headers.iter_mut().find(|(n, _)| n == name) {
            value.push_str(&extra);
        }
        headers
    }
}

/// Stripe's `v1` signature: hex HMAC of `{t}.{body}`.
fn stripe_v1(secret: &PlainSecret, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    hex(&hmac_sha256(secret.key(), &[t.as_bytes(), b".", body]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(scheme: SchemeName, secret: &str) -> Signer {
        let settings = SignatureSettings {
            scheme,
            header: DEFAULT_SIGNATURE_HEADER.to_owned(),
            sha256_prefix: false,
        };
        Signer::new(&settings, secret).unwrap()
    }

    fn message(body: &[u8]) -> SignedMessage<'_> {
        SignedMessage {
            event_id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            event_type: "invoice.paid",
            timestamp: 1614265330,
            body,
        }
    }

    fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
        headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    // GitHub's published example (docs: "Validating webhook deliveries").
    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    const GITHUB_HMAC: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn standard_matches_the_standard_webhooks_vector_and_names_the_event_type() {
        let signer = signer(
            SchemeName::Standard,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        let headers = signer.headers(&message(br#"{"test": 2432232314}"#));
        assert_eq!(
            pairs(&headers),
            [
                ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
                ("webhook-timestamp", "1614265330"),
                (
                    "webhook-signature",
                    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
                ),
                ("webhook-event-type", "invoice.paid"),
            ]
        );
    }

    #[test]
    fn github_matches_githubs_published_example() {
        let headers = signer(SchemeName::GitHub, GITHUB_SECRET).headers(&message(GITHUB_BODY));
        let expected = format!("sha256={GITHUB_HMAC}");
        assert_eq!(
            pairs(&headers),
            [("X-Hub-Signature-256", expected.as_str())]
        );
    }

    // Computed independently with Python:
    // hmac.new(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    //          b'1614265330.{"test": 2432232314}', hashlib.sha256).hexdigest()
    #[test]
    fn stripe_keys_with_the_whole_secret_string_and_signs_the_timestamp() {
        let signer = signer(SchemeName::Stripe, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let headers = signer.headers(&message(br#"{"test": 2432232314}"#));
        assert_eq!(
            pairs(&headers),
            [(
                "Stripe-Signature",
                "t=1614265330,v1=2e37df5d4a028c51a7f3133d64ae1e300d2c2c900f1b1d49d4369ad2530f8964"
            )]
        );
    }

    #[test]
    fn hex_uses_the_configured_header_with_or_without_the_prefix() {
        for (sha256_prefix, expected) in [
            (false, GITHUB_HMAC.to_owned()),
            (true, format!("sha256={GITHUB_HMAC}")),
        ] {
            let settings = SignatureSettings {
                scheme: SchemeName::Hex,
                header: "X-Fusion-Signature".to_owned(),
                sha256_prefix,
            };
            let signer = Signer::new(&settings, GITHUB_SECRET).unwrap();
            let headers = signer.headers(&message(GITHUB_BODY));
            assert_eq!(pairs(&headers), [("X-Fusion-Signature", expected.as_str())]);
            assert!(signer.sets_header("x-fusion-signature"));
        }
    }

    #[test]
    fn standard_needs_a_whsec_secret_and_the_others_a_printable_one() {
        let settings = |scheme| SignatureSettings {
            scheme,
            header: DEFAULT_SIGNATURE_HEADER.to_owned(),
            sha256_prefix: false,
        };
        assert!(Signer::new(&settings(SchemeName::Standard), "plain secret").is_err());
        for scheme in [SchemeName::GitHub, SchemeName::Stripe, SchemeName::Hex] {
            assert!(Signer::new(&settings(scheme), "plain secret").is_ok());
            assert!(Signer::new(&settings(scheme), "").is_err());
            assert!(Signer::new(&settings(scheme), "tab\there").is_err());
            assert!(Signer::new(&settings(scheme), "é").is_err());
            assert!(Signer::new(&settings(scheme), &"x".repeat(256)).is_err());
        }
    }

    fn rotating(scheme: SchemeName, new: &str, old: &str, expires_at_ms: i64) -> Signing {
        Signing {
            current: signer(scheme, new),
            previous: Some(PreviousSigner {
                signer: signer(scheme, old),
                expires_at_ms,
            }),
        }
    }

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER_SECRET: &str = "whsec_c2VjcmV0LWZvci10aGUtb2xkLWtleS0xMjM0NTY=";

    #[test]
    fn standard_carries_both_signatures_until_the_grace_period_ends() {
        let body = br#"{"test": 2432232314}"#;
        let signing = rotating(SchemeName::Standard, VECTOR_SECRET, OTHER_SECRET, 10_000);
        let current = Secret::parse(VECTOR_SECRET).unwrap();
        let previous = Secret::parse(OTHER_SECRET).unwrap();
        let sign = |secret: &Secret| secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        let during = signing.headers(&message(body), 9_999);
        let value = |headers: &[(String, String)]| {
            headers
                .iter()
                .find(|(n, _)| n == "webhook-signature")
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(
            value(&during),
            format!("{} {}", sign(&current), sign(&previous))
        );
        assert_eq!(
            value(&signing.headers(&message(body), 10_000)),
            sign(&current)
        );
    }

    #[test]
    fn stripe_carries_one_v1_entry_per_secret_during_the_grace_period() {
        let body = br#"{"test": 2432232314}"#;
        // The previous secret is the one of the vector computed above.
        let signing = rotating(SchemeName::Stripe, OTHER_SECRET, VECTOR_SECRET, 10_000);
        let headers = signing.headers(&message(body), 0);
        let current_v1 = stripe_v1(&PlainSecret::parse(OTHER_SECRET).unwrap(), 1614265330, body);
        assert_eq!(
            pairs(&headers),
            [(
                "Stripe-Signature",
                format!(
                    "t=1614265330,v1={current_v1},v1=2e37df5d4a028c51a7f3133d64ae1e300d2c2c900f1b1d49d4369ad2530f8964"
                )
                .as_str()
            )]
        );
        let after = signing.headers(&message(body), 10_000);
        assert_eq!(
            pairs(&after),
            [(
                "Stripe-Signature",
                format!("t=1614265330,v1={current_v1}").as_str()
            )]
        );
    }

    #[test]
    fn single_signature_schemes_sign_with_the_new_secret_only() {
        for scheme in [SchemeName::GitHub, SchemeName::Hex] {
            let signing = rotating(scheme, GITHUB_SECRET, "the old secret", 10_000);
            let alone = signer(scheme, GITHUB_SECRET).headers(&message(GITHUB_BODY));
            assert_eq!(signing.headers(&message(GITHUB_BODY), 0), alone);
        }
    }

    #[test]
    fn scheme_names_round_trip() {
        for scheme in [
            SchemeName::Standard,
            SchemeName::GitHub,
            SchemeName::Stripe,
            SchemeName::Hex,
        ] {
            assert_eq!(SchemeName::parse(scheme.as_str()), Ok(scheme));
        }
        assert!(SchemeName::parse("GitHub").is_err());
    }
}
