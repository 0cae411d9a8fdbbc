//! The canonical string encoding of a [`Partition`] (described in the module docs).

use chrono::{NaiveDate, NaiveDateTime};

use super::{Partition, PartitionKeyError, Result};

/// How deep tuples may nest and still decode. Deeper input is rejected instead of recursing
/// without bound.
pub const MAX_TUPLE_DEPTH: usize = 64;

const DATE_FORMAT: &str = "%Y-%m-%d";
const DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// Every form `decode` accepts, for error messages.
const FORMS: &str = "an encoded partition: u:, d:2024-01-05, dt:2024-01-05T03:00:00Z, \
                     ndt:2024-01-05T03:00:00, i:42, s:any text, t:elem|elem, or a plain string \
                     without ':', '|' or '\\'";

/// Appends the canonical encoding of `partition` to `out`.
pub(super) fn encode_into(partition: &Partition, out: &mut String) {
    use std::fmt::Write as _;
    match partition {
        Partition::Unpartitioned => out.push_str("u:"),
        // Writing into a `String` cannot fail.
        Partition::Date(d) => {
            let _ = write!(out, "d:{}", d.format(DATE_FORMAT));
        }
        Partition::DateTime(t) => {
            let _ = write!(out, "dt:{}Z", t.naive_utc().format(DATETIME_FORMAT));
        }
        Partition::NaiveDateTime(t) => {
            let _ = write!(out, "ndt:{}", t.format(DATETIME_FORMAT));
        }
        Partition::Int(n) => {
            let _ = write!(out, "i:{n}");
        }
        Partition::Str(s) => {
            if needs_tag(s) {
                out.push_str("s:");
            }
            out.push_str(s);
        }
        Partition::Tuple(items) => {
            out.push_str("t:");
            let mut element = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                element.clear();
                encode_into(item, &mut element);
                for c in element.chars() {
                    if c == '|' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
        }
    }
}

/// Whether a string must carry the `s:` tag to be read back as the same string.
fn needs_tag(s: &str) -> bool {
    s.is_empty() || s.contains([':', '|', '\\'])
}

/// Decodes a canonical encoding; see [`Partition::decode`].
pub(super) fn decode(input: &str) -> Result<Partition> {
    let partition = decode_at(input, 0)
        .map_err(|reason| PartitionKeyError::new(input, format!("{FORMS} ({reason})")))?;
    let canonical = partition.encode();
    if canonical != input {
        return Err(PartitionKeyError::new(
            input,
            format!("the canonical encoding '{canonical}' of the same partition"),
        ));
    }
    Ok(partition)
}

/// Decodes one (possibly nested) value; the error is the reason, without the input.
fn decode_at(input: &str, depth: usize) -> std::result::Result<Partition, String> {
    let Some((tag, rest)) = input.split_once(':') else {
        return decode_plain(input);
    };
    match tag {
        "u" if rest.is_empty() => Ok(Partition::Unpartitioned),
        "u" => Err(String::from("nothing may follow 'u:'")),
        "d" => NaiveDate::parse_from_str(rest, DATE_FORMAT)
            .map(Partition::Date)
            .map_err(|err| {
                format!(
                    "'{}' after 'd:' is not a date like 2024-01-05: {err}",
                    excerpt(rest)
                )
            }),
        "dt" => rest
            .strip_suffix('Z')
            .ok_or_else(|| format!("'{}' after 'dt:' does not end in 'Z'", excerpt(rest)))
            .and_then(|naive| {
                NaiveDateTime::parse_from_str(naive, DATETIME_FORMAT).map_err(|err| {
                    format!(
                        "'{}' after 'dt:' is not a time like 2024-01-05T03:00:00Z: {err}",
                        excerpt(rest)
                    )
                })
            })
            .map(|naive| Partition::DateTime(naive.and_utc())),
        "ndt" => NaiveDateTime::parse_from_str(rest, DATETIME_FORMAT)
            .map(Partition::NaiveDateTime)
            .map_err(|err| {
                format!(
                    "'{}' after 'ndt:' is not a time like 2024-01-05T03:00:00: {err}",
                    excerpt(rest)
                )
            }),
        "i" => rest.parse::<i64>().map(Partition::Int).map_err(|err| {
            format!(
                "'{}' after 'i:' is not a 64-bit integer: {err}",
                excerpt(rest)
            )
        }),
        "s" => Ok(Partition::Str(rest.to_owned())),
        "t" => decode_tuple(rest, depth),
        other => Err(format!(
            "unknown tag '{}:'; the tags are u:, d:, dt:, ndt:, i:, s: and t:",
            excerpt(other)
        )),
    }
}

fn decode_plain(input: &str) -> std::result::Result<Partition, String> {
    if input.is_empty() {
        Err(String::from(
            "the input is empty; the empty string is encoded 's:'",
        ))
    } else if input.contains(['|', '\\']) {
        Err(String::from(
            "a plain string cannot contain '|' or '\\'; such strings are encoded with 's:'",
        ))
    } else {
        Ok(Partition::Str(input.to_owned()))
    }
}

fn decode_tuple(body: &str, depth: usize) -> std::result::Result<Partition, String> {
    if depth >= MAX_TUPLE_DEPTH {
        return Err(format!(
            "tuples nest more than {MAX_TUPLE_DEPTH} levels deep"
        ));
    }
    if body.is_empty() {
        return Ok(Partition::Tuple(Vec::new()));
    }
    let mut items = Vec::new();
    let mut element = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | '|')) => element.push(escaped),
                Some(other) => {
                    return Err(format!(
                        "'\\{other}' inside a tuple; only '\\\\' and '\\|' are escapes"
                    ));
                }
                None => return Err(String::from("the tuple ends in a lone '\\'")),
            },
            '|' => {
                items.push(decode_element(&element, depth)?);
                element.clear();
            }
            c => element.push(c),
        }
    }
    items.push(decode_element(&element, depth)?);
    Ok(Partition::Tuple(items))
}

fn decode_element(element: &str, depth: usize) -> std::result::Result<Partition, String> {
    decode_at(element, depth + 1)
        .map_err(|reason| format!("tuple element '{}': {reason}", excerpt(element)))
}

/// At most 40 characters of `s`, for messages about parts of a possibly huge input.
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeply_nested_input_is_rejected_not_recursed() {
        let input = "t:".repeat(100_000);
        let err = decode(&input).unwrap_err();
        assert!(err.to_string().contains("nest more than"), "{err}");
    }

    #[test]
    fn tuples_nest_up_to_the_limit() {
        let mut p = Partition::Int(1);
        for _ in 0..MAX_TUPLE_DEPTH {
            p = Partition::Tuple(vec![p]);
        }
        assert_eq!(decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn non_canonical_spellings_name_the_canonical_form() {
        for (input, canonical) in [
            ("s:abc", "'abc'"),
            ("i:+42", "'i:42'"),
            ("i:042", "'i:42'"),
            ("dt:2024-01-01T00:00:00.000Z", "'dt:2024-01-01T00:00:00Z'"),
            ("ndt:2024-01-01T00:00:00.5", "'ndt:2024-01-01T00:00:00.500'"),
        ] {
            let err = decode(input).unwrap_err();
            assert!(err.to_string().contains(canonical), "{input}: {err}");
        }
    }
}
