use std::fmt;

/// An error that ends the connection after an error response with `Connection: close`.
///
/// The `&'static str` payloads are for logs only; they are never sent to the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// 400
    BadRequest(&'static str),
    /// 414
    UriTooLong,
    /// 431: head bytes or too many fields (also for trailer sections).
    HeadersTooLarge,
    /// 505
    VersionNotSupported,
    /// 501: an unknown transfer coding.
    NotImplemented(&'static str),
    /// 413 (raised by the engine, which knows the body limit).
    PayloadTooLarge,
}

impl ParseError {
    /// Status code of the error response.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::BadRequest(_) => 400,
            ParseError::UriTooLong => 414,
            ParseError::HeadersTooLarge => 431,
            ParseError::VersionNotSupported => 505,
            ParseError::NotImplemented(_) => 501,
            ParseError::PayloadTooLarge => 413,
        }
    }

    /// Canonical reason phrase, identical to `http::StatusCode::canonical_reason` so the error
    /// response's status line matches what `write_response_head` would produce.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::BadRequest(_) => "Bad Request",
            ParseError::UriTooLong => "URI Too Long",
            ParseError::HeadersTooLarge => "Request Header Fields Too Large",
            ParseError::VersionNotSupported => "HTTP Version Not Supported",
            ParseError::NotImplemented(_) => "Not Implemented",
            ParseError::PayloadTooLarge => "Payload Too Large",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.reason())?;
        match self {
            ParseError::BadRequest(why) | ParseError::NotImplemented(why) => write!(f, ": {why}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_reason_match_http_crate() {
        let all = [
            ParseError::BadRequest("x"),
            ParseError::UriTooLong,
            ParseError::HeadersTooLarge,
            ParseError::VersionNotSupported,
            ParseError::NotImplemented("y"),
            ParseError::PayloadTooLarge,
        ];
        let codes = [400, 414, 431, 505, 501, 413];
        for (e, code) in all.iter().zip(codes) {
            assert_eq!(e.status(), code);
            let canon = http::StatusCode::from_u16(code)
                .unwrap()
                .canonical_reason()
                .unwrap();
            assert_eq!(e.reason(), canon);
        }
    }

    #[test]
    fn display() {
        assert_eq!(
            ParseError::BadRequest("bare LF").to_string(),
            "400 Bad Request: bare LF"
        );
        assert_eq!(ParseError::UriTooLong.to_string(), "414 URI Too Long");
        let e: Box<dyn std::error::Error> = Box::new(ParseError::HeadersTooLarge);
        assert!(e.to_string().starts_with("431"));
    }
}
