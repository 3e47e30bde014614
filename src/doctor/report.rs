//! The doctor's findings and how they are shown: a table for people, JSON for scripts. Pure.

use serde::Serialize;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verdict {
    /// It was tried and worked.
    Works,
    /// It was tried, or a prerequisite is missing: it does not work.
    Fails,
    /// Every prerequisite that can be checked is there, but it was not tried.
    Ready,
    /// It could not be told (a call was refused or failed, or nothing to try it over).
    Unknown,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Works => "works",
            Verdict::Fails => "fails",
            Verdict::Ready => "ready",
            Verdict::Unknown => "unknown",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Check {
    /// `credentials`, `instance`, `direct`, `eice`, `ssm`, `serial` or `key`.
    pub check: &'static str,
    /// The verdict.
    pub result: Verdict,
    /// What was seen, one fact per line.
    pub evidence: Vec<String>,
    /// What to do about it, when something is to be done.
    pub fix: Option<String>,
}

impl Check {
    /// A check with one line of evidence and no fix.
    pub(crate) fn new(check: &'static str, result: Verdict, evidence: impl Into<String>) -> Check {
        Check { check, result, evidence: vec![evidence.into()], fix: None }
    }

    /// The same check with more evidence.
    pub(crate) fn and(mut self, evidence: impl Into<String>) -> Check {
        self.evidence.push(evidence.into());
        self
    }

    /// The same check with a fix.
    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Everything the doctor found for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Report {
    /// The host as the user wrote it.
    pub host: String,
    /// The rows, in the order they are shown.
    pub checks: Vec<Check>,
    /// ssh settings that get in the way.
    pub warnings: Vec<String>,
}

/// The schema name and version of the JSON document (docs/output.md; a field may be added within
/// version 1, a change or removal makes version 2).
pub(crate) const SCHEMA: &str = "ec2-broker.doctor/1";

/// The routes ssh can use (the serial console is a terminal, not one of them).
const SSH_ROUTES: [&str; 3] = ["direct", "eice", "ssm"];

impl Report {
    /// The ssh routes that work, in the order `--route auto` tries them.
    pub(crate) fn usable_routes(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| SSH_ROUTES.contains(&c.check) && c.result == Verdict::Works)
            .map(|c| c.check)
            .collect()
    }

    /// 0 when some route ssh can use works, else 1.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.usable_routes().is_empty() { 1 } else { 0 }
    }

    /// The table.
    pub(crate) fn to_text(&self) -> String {
        let mut out = format!("ec2-broker doctor {}\n\n", self.host);
        for c in &self.checks {
            let first = c.evidence.first().map_or("", String::as_str);
            out += format!("{:<12} {:<8} {first}", c.check, c.result.word()).trim_end();
            out.push('\n');
            for line in c.evidence.iter().skip(1) {
                out += &format!("{:22}{line}\n", "");
            }
            if let Some(fix) = &c.fix {
                out += &format!("{:22}fix: {fix}\n", "");
            }
        }
        out.push('\n');
        out += &match self.usable_routes().as_slice() {
            [] => "No route reaches it.\n".to_string(),
            routes => format!("ssh reaches it through: {}.\n", routes.join(", ")),
        };
        for w in &self.warnings {
            out += &format!("warning: {w}\n");
        }
        out
    }

    /// The JSON document (`--json`).
    pub(crate) fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        value["schema"] = serde_json::json!(SCHEMA);
        value["usable_routes"] = serde_json::json!(self.usable_routes());
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            host: "web-1".into(),
            checks: vec![
                Check::new("direct", Verdict::Fails, "10.0.0.5:22: connection timed out")
                    .and("no inbound rule allows TCP 22")
                    .fix("add one"),
                Check::new("ssm", Verdict::Works, "agent online"),
                Check::new("serial", Verdict::Ready, "enabled"),
            ],
            warnings: vec!["ControlPersist hides errors".into()],
        }
    }

    #[test]
    fn table() {
        assert_eq!(
            report().to_text(),
            "ec2-broker doctor web-1\n\n\
             direct       fails    10.0.0.5:22: connection timed out\n\
             \x20                     no inbound rule allows TCP 22\n\
             \x20                     fix: add one\n\
             ssm          works    agent online\n\
             serial       ready    enabled\n\n\
             ssh reaches it through: ssm.\n\
             warning: ControlPersist hides errors\n"
        );
        assert_eq!(report().exit_code(), 0);
    }

    #[test]
    fn json_and_exit_code() {
        let mut r = report();
        r.checks.remove(1);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["checks"][0]["result"], "fails");
        assert_eq!(v["checks"][0]["fix"], "add one");
        assert_eq!(v["checks"][1]["result"], "ready");
        assert_eq!(v["usable_routes"], serde_json::json!([]));
        assert_eq!(r.exit_code(), 1, "the serial console is not a route for ssh");
        assert!(r.to_text().contains("No route reaches it.\n"));
    }
}
