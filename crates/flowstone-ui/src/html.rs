//! HTML by hand: escaping, the page frame, and the small formatting helpers every page uses.
//!
//! Every string that comes from users or data (asset names, partitions, error text, metadata)
//! goes through [`esc`] (text and attribute values) or [`url_segment`] (inside a link) before
//! it reaches a page. There is no template engine: pages are `format!` over escaped pieces.

use std::fmt::Write as _;
use std::time::Duration;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use chrono::{DateTime, Utc};
use flowstone::Partition;

/// `text` with `& < > " '` escaped, safe in element text and in quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` percent-encoded for one path segment or query value (everything but RFC 3986's
/// unreserved characters), so a partition like `t:d:2024-01-05|eu` or `a/b` stays one segment.
pub fn url_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The link to an asset's page.
pub fn asset_href(asset: &str) -> String {
    format!("/assets/{}", url_segment(asset))
}

/// The link to a partition's page.
pub fn partition_href(asset: &str, partition: &Partition) -> String {
    format!(
        "/assets/{}/partitions/{}",
        url_segment(asset),
        url_segment(&partition.input_text())
    )
}

/// A time for people, in UTC.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An optional time, `-` when absent.
pub fn time_or_dash(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| String::from("-"), time)
}

/// A duration for people: `850 ms`, `1.2 s`, `3 m 05 s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} m {:02} s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// A status as a coloured badge (`class="badge status-failed"`).
pub fn badge(status: &str) -> String {
    format!("<span class=\"badge status-{0}\">{0}</span>", esc(status))
}

/// A hidden CSRF field for a form.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A one-button form POSTing to `action`, with the CSRF token.
pub fn action_button(action: &str, label: &str, csrf: &str, id: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}<button type=\"submit\" id=\"{}\">{}</button></form>",
        esc(action),
        csrf_field(csrf),
        esc(id),
        esc(label)
    )
}

/// The navigation links, and which one `active` names.
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/graph", "Asset graph"),
    ("/jobs", "Jobs"),
    ("/backfills", "Backfills"),
    ("/automation", "Automation"),
];

/// A whole page: the frame (title, navigation, stylesheet, script) around `body`, which the
/// caller has escaped.
pub fn page(title: &str, active: &str, body: &str) -> Html<String> {
    let mut nav = String::new();
    for (href, label) in NAV {
        let class = if *href == active {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{href}\"{class}>{label}</a>");
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · FlowStone</title><link rel=\"stylesheet\" href=\"/static/app.css\">\
         <script src=\"/static/app.js\" defer></script></head>\
         <body><header><a class=\"brand\" href=\"/\">FlowStone</a><nav>{nav}</nav></header>\
         <main>{body}</main></body></html>",
        esc(title)
    ))
}

/// A section with a heading around `inner` (already escaped).
pub fn section(title: &str, inner: &str) -> String {
    format!("<section><h2>{}</h2>{inner}</section>", esc(title))
}

/// A table: a header row and rows of already-escaped cells; `empty` when there are no rows.
pub fn table(id: &str, headers: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\" id=\"{}\">{}</p>", esc(id), esc(empty));
    }
    let mut out = format!("<table id=\"{}\"><thead><tr>", esc(id));
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A JSON value to embed in `<script type="application/json">`: `<` is escaped so no
/// string inside can close the element.
pub fn script_json(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

/// `GET /static/app.css`.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/app.css"),
    )
}

/// `GET /static/app.js`.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/app.js"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }

    #[test]
    fn url_segments_keep_one_segment() {
        assert_eq!(url_segment("2024-01-05"), "2024-01-05");
        assert_eq!(url_segment("t:d:2024-01-05|eu"), "t%3Ad%3A2024-01-05%7Ceu");
        assert_eq!(url_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(url_segment("é"), "%C3%A9");
    }

    #[test]
    fn script_json_cannot_close_the_script() {
        let v = serde_json::json!({"k": "</script><b>"});
        assert!(!script_json(&v).contains("</"));
    }
}
