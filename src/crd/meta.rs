//! Metadata conventions both stores (SQLite and the Kubernetes API) share: when an object was
//! created, to the nanosecond (the queue, schedules and history order by it), and generated
//! name suffixes.

use chrono::{DateTime, TimeZone, Utc};
use kube::Resource;

/// Annotation holding an object's creation instant to the nanosecond (`creationTimestamp`
/// has whole seconds, too coarse to keep a queue in creation order).
pub const ANNOTATION_CREATED: &str = "tomato.dev/created";

/// RFC 3339 with nine fraction digits, so that the text sorts as the time does.
pub fn precise_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Creation time of an object: the precise annotation when present, else
/// `creationTimestamp` (the epoch when neither is set).
pub fn created<K: Resource>(obj: &K) -> DateTime<Utc> {
    let meta = obj.meta();
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_CREATED))
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            meta.creation_timestamp
                .as_ref()
                .and_then(|t| Utc.timestamp_millis_opt(t.0.as_millisecond()).single())
        })
        .unwrap_or_default()
}

/// A fresh random name suffix in the style of Kubernetes' `generateName` (lowercase letters
/// and digits, no vowels so it never spells words).
pub fn random_suffix(len: usize) -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
