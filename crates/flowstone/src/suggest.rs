//! "Did you mean ...?": the registered name closest to a misspelt one.
//!
//! Every lookup by name (assets, IO managers, hooks, executors, the CLI's inputs) answers an
//! unknown name with the nearest registered one, so they all share this.

/// The candidate closest to `name` by edit distance, when it is close enough to be a typo.
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `"; did you mean 'near'?"` when a candidate is close to `name`, else an empty string: the
/// tail of an "is not registered" message.
pub fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    suggest(name, candidates)
        .map(|near| format!("; did you mean '{near}'?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_typos_only() {
        let names = ["raw_events", "daily_report"];
        assert_eq!(suggest("raw_event", names.into_iter()), Some("raw_events"));
        assert_eq!(
            suggest("dialy_report", names.into_iter()),
            Some("daily_report")
        );
        assert_eq!(suggest("zzz", names.into_iter()), None);
        assert_eq!(
            did_you_mean("raw_event", names.into_iter()),
            "; did you mean 'raw_events'?"
        );
        assert_eq!(did_you_mean("zzz", names.into_iter()), "");
    }
}
