//! Strict JSON for token parts: serde_json keeps the last of two equal keys without a word, so
//! `{"sub":"alice","sub":"admin"}` would mean whatever the last parser in the chain decides.
//! This parser refuses a repeated key at any depth instead.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a token part is not acceptable JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// Not JSON, or not a JSON object at the top.
    Malformed,
    /// The same key twice in one object.
    DuplicateKey,
}

/// Parses `bytes` as one JSON object, rejecting duplicate keys at any depth.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    match serde_json::from_slice::<StrictValue>(bytes) {
        Ok(StrictValue(Value::Object(map))) => Ok(map),
        Ok(_) => Err(StrictJsonError::Malformed),
        Err(e) if e.to_string().starts_with(DUPLICATE_KEY) => Err(StrictJsonError::DuplicateKey),
        Err(_) => Err(StrictJsonError::Malformed),
    }
}

/// Prefix of the custom error message; serde_json appends the position after it.
const DUPLICATE_KEY: &str = "duplicate key";

/// A `serde_json::Value` whose objects were built without any repeated key.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell NaN or infinity, so this only fails on overflowed literals.
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(DUPLICATE_KEY));
            }
            let StrictValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_objects() {
        let m = parse_object(br#"{"a":1,"b":[1,{"c":"d"}],"e":null,"f":1.5,"g":-3}"#).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m["b"][1]["c"], "d");
    }

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert_eq!(
            parse_object(br#"{"sub":"a","sub":"b"}"#),
            Err(StrictJsonError::DuplicateKey)
        );
        assert_eq!(
            parse_object(br#"{"x":[{"k":1,"k":1}]}"#),
            Err(StrictJsonError::DuplicateKey)
        );
        // An escaped spelling of the same key is the same key.
        assert_eq!(
            parse_object(br#"{"sub":"a","s\u0075b":"b"}"#),
            Err(StrictJsonError::DuplicateKey)
        );
    }

    #[test]
    fn rejects_non_objects_and_junk() {
        for junk in [
            &b"[]"[..],
            b"\"s\"",
            b"1",
            b"",
            b"{",
            b"{}x",
            b"\xff",
            b"{\"a\":1,}",
        ] {
            assert_eq!(
                parse_object(junk),
                Err(StrictJsonError::Malformed),
                "{junk:?}"
            );
        }
        let deep = "[".repeat(10_000);
        assert_eq!(
            parse_object(format!("{{\"a\":{deep}}}").as_bytes()),
            Err(StrictJsonError::Malformed)
        );
    }
}
