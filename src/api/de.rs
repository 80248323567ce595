//! Deserializing requests with the field at fault typed. serde says a field is missing only in
//! its error's text (`missing field `stand``, at the path of the object that lacks it), so the
//! deserializers here carry an error of their own, [`DeError`], whose
//! [`serde::de::Error::missing_field`] keeps the field's name: which field is missing is read
//! from the type, never parsed back out of a message. Messages stay serde's, word for word.

use std::fmt;

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Unexpected, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Value;

/// A deserialization error: a missing field by name, or any other by its message.
#[derive(Debug)]
pub enum DeError {
    Missing(&'static str),
    Other(String),
}

impl DeError {
    fn other(e: impl fmt::Display) -> Self {
        DeError::Other(e.to_string())
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::other(msg)
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::Missing(field)
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // serde's own words for it.
            DeError::Missing(field) => write!(f, "missing field `{field}`"),
            DeError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for DeError {}

/// A JSON value read as serde_json's own `Value` deserializer reads it, with [`DeError`].
pub struct JsonValue(pub Value);

impl<'de> IntoDeserializer<'de, DeError> for JsonValue {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for JsonValue {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (None, Some(i), _) => visitor.visit_i64(i),
                (None, None, Some(f)) => visitor.visit_f64(f),
                (None, None, None) => Err(de::Error::custom("a number out of range")),
            },
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(JsonValue));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(map) => {
                let mut map = MapDeserializer::new(map.into_iter().map(|(k, v)| (k, JsonValue(v))));
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    /// A unit variant is a string, any other variant a map of one key, as in serde_json.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Object(map) if map.len() == 1 => visitor.visit_enum(MapAccessDeserializer::new(
                MapDeserializer::new(map.into_iter().map(|(k, v)| (k, JsonValue(v)))),
            )),
            Value::Object(_) => Err(de::Error::invalid_value(
                Unexpected::Map,
                &"map with a single key",
            )),
            other => Err(de::Error::invalid_type(unexpected(&other), &"string or map")),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// A query string (or a form): the pairs as `serde_urlencoded` reads them, with [`DeError`].
/// Its values stay `serde_urlencoded`'s (numbers parsed from text and so on); only the map of
/// them answers with [`DeError`], so that a missing parameter is typed.
pub struct Query<'a>(pub serde_urlencoded::Deserializer<'a>);

impl<'de> de::Deserializer<'de> for Query<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // The visitor's own result, typed error and all, passes through serde_urlencoded's
        // `Ok`; only an error of serde_urlencoded's becomes a `DeError` by its message.
        de::Deserializer::deserialize_map(self.0, Typed(visitor)).map_err(DeError::other)?
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// A visitor of the query's map that hands `V` the entries with [`DeError`].
struct Typed<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Typed<V> {
    type Value = Result<V::Value, DeError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(self.0.visit_map(Entries(map)))
    }
}

/// The query's entries, their errors as [`DeError`].
struct Entries<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<A> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        self.0.next_key_seed(seed).map_err(DeError::other)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        self.0.next_value_seed(seed).map_err(DeError::other)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Spec {
        service: String,
        retries: Option<u32>,
        kind: Option<Kind>,
        env: Option<Vec<Env>>,
        ratio: Option<f64>,
        id: Option<Id>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    enum Kind {
        Regular,
        Shards(u32),
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Env {
        name: String,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Id(i64);

    /// Through [`JsonValue`] and through serde_json's own `Value`: the same value or the same
    /// message.
    fn both(v: Value) -> (Result<Spec, String>, Result<Spec, String>) {
        let ours = serde_path_to_error::deserialize::<_, Spec>(JsonValue(v.clone()))
            .map_err(|e| format!("{}: {}", e.path(), e.inner()));
        let theirs = serde_path_to_error::deserialize::<_, Spec>(v)
            .map_err(|e| format!("{}: {}", e.path(), e.inner()));
        (ours, theirs)
    }

    #[test]
    fn a_json_value_reads_as_serde_json_reads_it_with_the_missing_field_typed() {
        for v in [
            json!({"service": "demo", "retries": 2, "kind": "Regular", "env": [{"name": "A"}], "ratio": 1, "id": -3}),
            json!({"service": "demo", "kind": {"Shards": 4}, "retries": null}),
            json!({"service": "demo", "retries": -1}),
            json!({"service": "demo", "retries": 0.5}),
            json!({"service": 5}),
            json!({"service": "demo", "kind": "Weekly"}),
            json!({"service": "demo", "kind": {"Shards": 1, "Regular": null}}),
            json!({"service": "demo", "kind": []}),
            json!({"service": "demo", "env": [{"value": "x"}]}),
            json!({"service": "demo", "env": {}}),
            json!(["demo", 1]),
            json!({"retries": 1}),
            json!("demo"),
        ] {
            let (ours, theirs) = both(v.clone());
            assert_eq!(ours, theirs, "{v}");
        }
        let e =
            serde_path_to_error::deserialize::<_, Spec>(JsonValue(json!({"service": "demo", "env": [{}]})))
                .unwrap_err();
        assert_eq!(e.path().to_string(), "env[0]");
        assert!(matches!(e.inner(), DeError::Missing("name")), "{e}");
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Q {
        project: String,
        limit: Option<usize>,
    }

    fn query(q: &str) -> Result<Q, serde_path_to_error::Error<DeError>> {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(Query(de))
    }

    #[test]
    fn a_missing_query_parameter_is_typed_and_a_bad_one_keeps_its_path_and_message() {
        assert!(query("project=demo&limit=5").is_ok());
        let e = query("limit=5").unwrap_err();
        assert!(matches!(e.inner(), DeError::Missing("project")), "{e}");
        assert_eq!(e.inner().to_string(), "missing field `project`");
        let e = query("project=demo&limit=x").unwrap_err();
        assert_eq!(e.path().to_string(), "limit");
        assert_eq!(e.inner().to_string(), "invalid digit found in string");
    }
}
