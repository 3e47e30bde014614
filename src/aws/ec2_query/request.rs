//! The EC2 Query protocol's request: `Action`, `Version` and the operation's parameters,
//! form-encoded as the SDK sends them (a list as `Name.1`, `Name.2`, …; a filter as
//! `Filter.N.Name` with `Filter.N.Value.M`). Pure: parameters in, the body's text out.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The EC2 API version every call names.
pub(crate) const API_VERSION: &str = "2016-11-15";

/// What form encoding leaves as is: RFC 3986's unreserved characters.
const FORM_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// One call's parameters, in the order they were added.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    action: &'static str,
    pairs: Vec<(String, String)>,
    filters: usize,
}

impl Params {
    /// A call of `action` (`DescribeInstances`, …) with no parameter yet.
    pub(crate) fn new(action: &'static str) -> Params {
        Params { action, pairs: Vec::new(), filters: 0 }
    }

    /// The operation's name.
    pub(crate) fn action(&self) -> &'static str {
        self.action
    }

    /// `name=value`.
    pub(crate) fn value(mut self, name: &str, value: impl Into<String>) -> Params {
        self.pairs.push((name.to_string(), value.into()));
        self
    }

    /// `name.1=…&name.2=…`, one per value (nothing for none).
    pub(crate) fn list<S: AsRef<str>>(mut self, name: &str, values: &[S]) -> Params {
        for (i, v) in values.iter().enumerate() {
            self.pairs.push((format!("{name}.{}", i + 1), v.as_ref().to_string()));
        }
        self
    }

    /// One more `Filter.N`: its name and values (a filter matches any of its values; filters
    /// together must all match).
    pub(crate) fn filter<S: AsRef<str>>(mut self, name: &str, values: &[S]) -> Params {
        self.filters += 1;
        let n = self.filters;
        self.pairs.push((format!("Filter.{n}.Name"), name.to_string()));
        for (i, v) in values.iter().enumerate() {
            self.pairs.push((format!("Filter.{n}.Value.{}", i + 1), v.as_ref().to_string()));
        }
        self
    }

    /// The form-encoded body, with `NextToken` for a page after the first.
    pub(crate) fn body(&self, next_token: Option<&str>) -> String {
        let mut out = format!("Action={}&Version={API_VERSION}", self.action);
        let token = next_token.map(|t| ("NextToken", t));
        for (name, value) in self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).chain(token) {
            out.push('&');
            out.extend(utf8_percent_encode(name, FORM_VALUE));
            out.push('=');
            out.extend(utf8_percent_encode(value, FORM_VALUE));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_filters_are_numbered_from_one_and_values_encoded() {
        let p = Params::new("DescribeInstances")
            .list("InstanceId", &["i-1", "i-2"])
            .filter("tag:Name", &["web 1&x=y"])
            .filter("instance-state-name", &["running", "stopped"])
            .value("MaxResults", "1000");
        assert_eq!(
            p.body(Some("tok/+=")),
            "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2\
             &Filter.1.Name=tag%3AName&Filter.1.Value.1=web%201%26x%3Dy\
             &Filter.2.Name=instance-state-name&Filter.2.Value.1=running&Filter.2.Value.2=stopped\
             &MaxResults=1000&NextToken=tok%2F%2B%3D"
        );
        let none: [&str; 0] = [];
        assert_eq!(
            Params::new("DescribeRegions").list("RegionName", &none).body(None),
            "Action=DescribeRegions&Version=2016-11-15"
        );
    }
}
