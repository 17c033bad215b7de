//! Finding the one token of a request: `Authorization: Bearer` or the token cookie.
