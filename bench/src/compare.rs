//! Are two GraphQL answers the same data? Both servers' queries alias their fields to the same
//! names, so their `data` have the same shape; leaves are compared after normalising what the
//! two render differently: timestamps become instants (microseconds since the epoch, whatever
//! the offset or separator), uuids lower case.

use serde_json::Value as Json;

/// Microseconds since the epoch of an ISO 8601 / RFC 3339 timestamp with an offset
/// (`2026-01-02T03:04:05.123456Z`, `2026-01-02 03:04:05.1+00:00`, `...+0530`, `...+05`).
pub fn instant_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        // Microsecond precision: pad or cut to six digits.
        let six: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(6)
            .collect();
        micros = six.parse().ok()?;
    }
    let offset_secs = match s.get(i..)? {
        "Z" | "z" => 0,
        tz => {
            let sign = match tz.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = tz[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 2 && digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            let h: i64 = digits[..2].parse().ok()?;
            let m: i64 = if digits.len() == 4 {
                digits[2..].parse().ok()?
            } else {
                0
            };
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The value with timestamps as `{"instant": micros}` and uuids in lower case.
pub fn normalise(v: &Json) -> Json {
    match v {
        Json::String(s) => {
            if let Some(t) = instant_micros(s) {
                serde_json::json!({ "instant": t })
            } else if is_uuid(s) {
                Json::String(s.to_ascii_lowercase())
            } else {
                v.clone()
            }
        }
        Json::Array(items) => Json::Array(items.iter().map(normalise).collect()),
        Json::Object(map) => {
            Json::Object(map.iter().map(|(k, v)| (k.clone(), normalise(v))).collect())
        }
        _ => v.clone(),
    }
}

/// Where two normalised values first differ (a path like `category.threads.nodes[3].title`).
pub fn first_difference(a: &Json, b: &Json, path: &str) -> Option<String> {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            for (k, va) in x {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match y.get(k) {
                    Some(vb) => {
                        if let Some(d) = first_difference(va, vb, &p) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{p}: missing on the right")),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{k}: missing on the left"))
        }
        (Json::Array(x), Json::Array(y)) => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(va, vb, &format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{path}: {} items against {}", x.len(), y.len()))
        }
        _ => (a != b).then(|| format!("{path}: {a} against {b}")),
    }
}

/// Number of leaves (scalars and nulls) in a value: a check that an answer is not trivial.
pub fn leaves(v: &Json) -> usize {
    match v {
        Json::Array(items) => items.iter().map(leaves).sum(),
        Json::Object(map) => map.values().map(leaves).sum(),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_instants() {
        let a = instant_micros("2026-11-30T12:00:00.123456Z").unwrap();
        assert_eq!(instant_micros("2026-11-30 13:00:00.123456+01:00"), Some(a));
        assert_eq!(instant_micros("2026-11-30T12:00:00.123456+00"), Some(a));
        assert_eq!(instant_micros("2026-11-30T07:00:00.123456-0500"), Some(a));
        assert_eq!(
            instant_micros("2026-11-30T12:00:00.1234+00:00"),
            Some(a - 56)
        );
        assert_eq!(instant_micros("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(
            instant_micros("2000-03-01T00:00:00Z"),
            Some(951_868_800_000_000)
        );
        assert_eq!(instant_micros("Thread 12"), None);
        assert_eq!(instant_micros("2026-11-30T12:00:00"), None);
    }

    #[test]
    fn answers_compare_after_normalising() {
        let a = serde_json::json!({"t": {"id": "ABCDEF01-0000-0000-0000-000000000000",
            "at": "2026-11-30T12:00:00Z", "n": [1, 2]}});
        let b = serde_json::json!({"t": {"id": "abcdef01-0000-0000-0000-000000000000",
            "at": "2026-11-30T12:00:00.000000+00:00", "n": [1, 2]}});
        assert_eq!(normalise(&a), normalise(&b));
        let c = serde_json::json!({"t": {"id": "abcdef01-0000-0000-0000-000000000000",
            "at": "2026-11-30T12:00:00Z", "n": [1, 3]}});
        assert_eq!(
            first_difference(&normalise(&a), &normalise(&c), "").as_deref(),
            Some("t.n[1]: 2 against 3")
        );
        assert_eq!(leaves(&a), 4);
    }
}
