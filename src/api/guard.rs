//! What every request meets before its handler's extractors run: a body
//! sent with a content coding is refused unread, and the 401 of a refused
//! key waits as [`crate::core::tenancy::auth_failures`] says for its address.

use super::problem::problem_response;
use super::AppState;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, Error};

/// Bodies are taken as sent: one compressed would have to be inflated
/// before its size could be bounded (a few KiB of gzip inflate to GiBs), so
/// a `Content-Encoding` other than `identity` is a 415 (RFC 7694: with
/// `Accept-Encoding: identity`), before anything is read or any key looked
/// up.
pub async fn refuse_encoded_bodies<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let encoded = request
        .headers()
        .get_all(CONTENT_ENCODING)
        .any(|value| !is_identity(value));
    if !encoded {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    let mut refusal = problem_response(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Unsupported Media Type",
        "request bodies are not decoded: send them without Content-Encoding (or with identity)"
            .to_owned(),
        Some("content-encoding"),
    );
    refusal
        .headers_mut()
        .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    Ok(request.into_response(refusal).map_into_right_body())
}

fn is_identity(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|value| {
        value
            .split(',')
            .map(str::trim)
            .all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case("identity"))
    })
}

/// A request that sent a key and is answered 401 waits before the answer
/// leaves, by how many keys its address had refused lately. The wait comes
/// after the handler is done, so the request's body is already freed; a
/// request without a key guessed nothing and is answered at once, and a
/// valid key is never held back. Answering 401 late rather than 429 keeps
/// the answer true: clients (and webhook SDKs) retry a 429, not a 401.
pub async fn slow_failed_authentication<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, Error> {
    let sent_key = request.headers().contains_key(AUTHORIZATION);
    let address = request.peer_addr().map(|peer| peer.ip());
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(request).await?;
    if let (true, StatusCode::UNAUTHORIZED, Some(address), Some(state)) =
        (sent_key, response.status(), address, state)
    {
        let delay = state.keys.failed_from(address);
        if !delay.is_zero() {
            actix_web::rt::time::sleep(delay).await;
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_identity_or_nothing_counts_as_an_unencoded_body() {
        for plain in ["identity", "IDENTITY", " identity , identity", ""] {
            assert!(is_identity(&HeaderValue::from_static(plain)), "{plain:?}");
        }
        for encoded in ["gzip", "identity, gzip", "br", "deflate", "x-gzip"] {
            assert!(
                !is_identity(&HeaderValue::from_static(encoded)),
                "{encoded:?}"
            );
        }
    }
}
