//! The canonical string encoding of a [`Partition`] (described in the module docs), and the
//! legacy form without control-character escapes that `decode` still reads.

use chrono::{NaiveDate, NaiveDateTime};

use super::{Partition, PartitionKeyError, Result};

/// How deep tuples may nest and still decode. Deeper input is rejected instead of recursing
/// without bound.
pub const MAX_TUPLE_DEPTH: usize = 64;

const DATE_FORMAT: &str = "%Y-%m-%d";
const DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// Every form `decode` accepts, for error messages.
const FORMS: &str = "an encoded partition: u:, d:2024-01-05, dt:2024-01-05T03:00:00Z, \
                     ndt:2024-01-05T03:00:00, i:42, s:any text, e:text with \\n escapes, \
                     t:elem|elem, or a plain string without ':', '|' or '\\'";

/// Which of the two string forms an encoder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Today's form: strings holding control characters are written with the `e:` tag and
    /// escapes, so no encoding holds a control character.
    Canonical,
    /// The form written before the `e:` tag existed: control characters verbatim. Never
    /// written any more; `decode` accepts it so rows stored by older versions still read.
    Legacy,
}

/// Appends the canonical encoding of `partition` to `out`.
pub(super) fn encode_into(partition: &Partition, out: &mut String) {
    encode_form(partition, Form::Canonical, out);
}

/// Appends the encoding of `partition` in `form` to `out`.
fn encode_form(partition: &Partition, form: Form, out: &mut String) {
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
        Partition::Str(s) if form == Form::Canonical && has_control(s) => {
            out.push_str("e:");
            escape_into(s, out);
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
                encode_form(item, form, &mut element);
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

/// Whether `s` holds a character the canonical encoding escapes: a Unicode control character
/// (C0, DEL, C1: NUL, tab, LF, CR, ESC...). PostgreSQL text refuses NUL, and newlines would
/// split a key across lines of logs and line-oriented files.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Writes `s` as the body of an `e:` string: `\\` for a backslash, `\0`, `\t`, `\n`, `\r` for
/// those characters, `\u{1b}` (lowercase hex, no leading zeros) for any other control
/// character, everything else verbatim.
fn escape_into(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Reads the body of an `e:` string. Lenient about spelling (`\u{a}` reads as LF); `decode`
/// then rejects every spelling but the canonical one.
fn unescape(body: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('0') => out.push('\0'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('u') => out.push(unescape_code_point(&mut chars)?),
            Some(other) => {
                return Err(format!(
                    "'\\{other}' after 'e:'; the escapes are \\\\, \\0, \\t, \\n, \\r and \\u{{hex}}"
                ));
            }
            None => return Err(String::from("a lone '\\' ends the string after 'e:'")),
        }
    }
    Ok(out)
}

/// Reads the `{hex}` of a `\u{hex}` escape from `chars`.
fn unescape_code_point(chars: &mut std::str::Chars<'_>) -> std::result::Result<char, String> {
    let malformed = || String::from("'\\u' after 'e:' is not followed by '{hex}' like \\u{1b}");
    if chars.next() != Some('{') {
        return Err(malformed());
    }
    let mut hex = String::new();
    loop {
        match chars.next() {
            Some('}') => break,
            Some(digit) if digit.is_ascii_hexdigit() && hex.len() < 6 => hex.push(digit),
            _ => return Err(malformed()),
        }
    }
    u32::from_str_radix(&hex, 16)
        .ok()
        .and_then(char::from_u32)
        .ok_or_else(|| format!("'\\u{{{hex}}}' after 'e:' is not a Unicode scalar value"))
}

/// Decodes a canonical (or legacy) encoding; see [`Partition::decode`].
pub(super) fn decode(input: &str) -> Result<Partition> {
    let partition = decode_at(input, 0)
        .map_err(|reason| PartitionKeyError::new(input, format!("{FORMS} ({reason})")))?;
    let canonical = partition.encode();
    if canonical != input && !is_legacy_encoding(&partition, input) {
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
        "e" => unescape(rest).map(Partition::Str),
        "t" => decode_tuple(rest, depth),
        other => Err(format!(
            "unknown tag '{}:'; the tags are u:, d:, dt:, ndt:, i:, s:, e: and t:",
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

/// Whether `input` is how versions before the `e:` tag encoded `partition`: it holds a control
/// character verbatim (which no canonical encoding does) and is otherwise canonical.
fn is_legacy_encoding(partition: &Partition, input: &str) -> bool {
    if !has_control(input) {
        return false;
    }
    let mut legacy = String::new();
    encode_form(partition, Form::Legacy, &mut legacy);
    legacy == input
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
    fn control_characters_are_escaped_after_the_e_tag() {
        for (text, encoded) in [
            ("a\nb", "e:a\\nb"),
            ("\0", "e:\\0"),
            ("tab\there\r", "e:tab\\there\\r"),
            ("\u{1b}[0m\u{7f}\u{85}", "e:\\u{1b}[0m\\u{7f}\\u{85}"),
            ("a:b|c\\\n", "e:a:b|c\\\\\\n"),
        ] {
            let p = Partition::Str(text.to_owned());
            assert_eq!(p.encode(), encoded, "{text:?}");
            assert_eq!(decode(encoded).unwrap(), p, "{encoded}");
        }
    }

    #[test]
    fn legacy_encodings_with_raw_control_characters_still_decode() {
        for (legacy, p) in [
            ("a\nb", Partition::Str("a\nb".into())),
            ("s:x\0:y", Partition::Str("x\0:y".into())),
            (
                "t:a\tb|s:c\\|\r",
                Partition::Tuple(vec![
                    Partition::Str("a\tb".into()),
                    Partition::Str("c|\r".into()),
                ]),
            ),
        ] {
            assert_eq!(decode(legacy).unwrap(), p, "{legacy:?}");
            assert!(!p.encode().contains(char::is_control), "{p:?}");
        }
    }

    #[test]
    fn mixed_or_misspelt_forms_are_rejected() {
        for (input, canonical) in [
            ("e:abc", "'abc'"),
            ("e:a\\u{a}", "'e:a\\n'"),
            ("e:\\u{001b}", "'e:\\u{1b}'"),
            ("e:\\u{41}\\n", "'e:A\\n'"),
            ("s:a\n", "'e:a\\n'"),
            ("t:e:\\\\n|a\nb", "'t:e:\\\\n|e:a\\\\nb'"),
        ] {
            let err = decode(input).unwrap_err();
            assert!(err.to_string().contains(canonical), "{input:?}: {err}");
        }
        for input in [
            "e:\\",
            "e:\\x",
            "e:\\u",
            "e:\\u{}",
            "e:\\u{d800}",
            "e:\\u{1234567}",
        ] {
            let err = decode(input).unwrap_err();
            assert!(err.to_string().contains("after 'e:'"), "{input:?}: {err}");
        }
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
