//! EC2 query-protocol filters (`Filter.N.Name`, `Filter.N.Value.M`, spec §2.3): parsing, the
//! limits EC2 enforces, and matching with EC2's `*` and `?` wildcards. Values of one filter are
//! ORed, filters are ANDed.

use std::collections::HashSet;

use axum::http::StatusCode;
use axum::response::Response;

use super::query::{err, list, param};

/// EC2's cap on filter values in one call, over all filters ("The maximum number of filter
/// values specified on a single call is 200", error `FilterLimitExceeded`, as SDK users
/// report it).
pub(super) const MAX_FILTER_VALUES: usize = 200;
/// EC2's cap on one filter value's length (same error code).
pub(super) const MAX_FILTER_VALUE_LEN: usize = 255;

/// `Filter.N.Name` with its `Filter.N.Value.M`, in index order.
pub(super) fn filters(params: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut filters = Vec::new();
    for i in 1.. {
        let Some(name) = param(params, &format!("Filter.{i}.Name")) else {
            break;
        };
        filters.push((name.to_string(), list(params, &format!("Filter.{i}.Value"))));
    }
    filters
}

/// The `FilterLimitExceeded` answer when `filters` break EC2's limits.
pub(super) fn limit_error(filters: &[(String, Vec<String>)]) -> Option<Response> {
    let count: usize = filters.iter().map(|(_, values)| values.len()).sum();
    if count > MAX_FILTER_VALUES {
        let message = format!("The maximum number of filter values specified on a single call is {MAX_FILTER_VALUES}");
        return Some(err(StatusCode::BAD_REQUEST, "FilterLimitExceeded", &message));
    }
    if filters.iter().flat_map(|(_, values)| values).any(|v| v.chars().count() > MAX_FILTER_VALUE_LEN) {
        let message = format!("The maximum length for a filter value is {MAX_FILTER_VALUE_LEN} characters");
        return Some(err(StatusCode::BAD_REQUEST, "FilterLimitExceeded", &message));
    }
    None
}

/// The request's filters, checked against EC2's limits and the operation's `known` filter names,
/// each ready to match; or the error EC2 answers.
pub(super) fn checked(params: &[(String, String)], known: &[&str]) -> Result<Vec<(String, Values)>, Box<Response>> {
    let filters = filters(params);
    if let Some(response) = limit_error(&filters) {
        return Err(Box::new(response));
    }
    if let Some((name, _)) = filters.iter().find(|(name, _)| !known.contains(&name.as_str())) {
        let message = format!("The filter '{name}' is invalid");
        return Err(Box::new(err(StatusCode::BAD_REQUEST, "InvalidParameterValue", &message)));
    }
    Ok(filters.into_iter().map(|(n, v)| (n, Values::new(&v))).collect())
}

/// One filter's values, ready to match many items: plain values in a set (one lookup), values
/// with wildcards apart.
#[derive(Debug, Clone)]
pub(super) struct Values {
    exact: HashSet<String>,
    patterns: Vec<String>,
}

impl Values {
    pub(super) fn new(values: &[String]) -> Values {
        let (patterns, exact): (Vec<String>, Vec<String>) =
            values.iter().cloned().partition(|v| v.contains('*') || v.contains('?'));
        Values { exact: exact.into_iter().collect(), patterns }
    }

    /// Whether any value matches `text`.
    pub(super) fn matches(&self, text: &str) -> bool {
        self.exact.contains(text) || self.patterns.iter().any(|p| wildcard(p, text))
    }
}

/// EC2 filter wildcards: `*` any run, `?` one character.
pub(super) fn wildcard(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("web-*", "web-1"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("web-*", "api-1"));
    }

    #[test]
    fn values_or_exact_and_patterns() {
        let v = Values::new(&["127.0.1.10".into(), "127.0.2.*".into()]);
        assert!(v.matches("127.0.1.10") && v.matches("127.0.2.99"));
        assert!(!v.matches("127.0.1.11"));
    }
}
