//! `ls` output: an aligned table for people, and JSON for programs with a versioned schema.
//!
//! The JSON document (schema `ec2-broker.ls/1`; a new field may be added within version 1, a
//! change or removal makes version 2):
//!
//! ```text
//! { "schema": "ec2-broker.ls/1",
//!   "scopes": [ { "profile": string|null, "region": string, "listed": number,
//!                 "error": string|null, "warnings": [string] } ],
//!   "instances": [ { "profile": string|null, "region": string, "id": string, "name": string|null,
//!                    "state": string, "private_ip": string|null, "public_ip": string|null,
//!                    "platform": "linux"|"windows", "instance_type": string|null,
//!                    "availability_zone": string|null, "vpc_id": string|null,
//!                    "ssm_ping_status": string|null, "tags": { string: string },
//!                    "routes": { "push": bool|null, "direct": bool|null, "eice": bool|null,
//!                                "ssm": bool|null, "serial": bool|null } } ] }
//! ```
//!
//! The schema is described for users in docs/output.md.
//!
//! A route is `true` when it looks usable, `false` when not, `null` when the call that would tell
//! failed (see that scope's `warnings`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Listed, RouteSigns, Scope};
use crate::output::width;

/// The schema name and version of the JSON document.
pub(crate) const SCHEMA: &str = "ec2-broker.ls/1";

/// How one scope went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScopeOutcome {
    /// Which.
    pub scope: Scope,
    /// Instances listed from it.
    pub listed: usize,
    /// Why it could not be listed at all.
    pub error: Option<String>,
    /// Calls that failed without stopping the listing.
    pub warnings: Vec<String>,
}

/// The table: one line per instance, columns padded to the widest cell. PROFILE appears only
/// with `show_profile`. With a `width` (stdout is a terminal) NAME and ROUTES are cut to fit it,
/// ending in `…`; the other columns (ids, addresses) are never cut.
pub(crate) fn table(rows: &[Listed], show_profile: bool, width: Option<usize>) -> String {
    let mut header = vec!["REGION", "ID", "NAME", "STATE", "PRIVATE", "PUBLIC", "PLATFORM", "ROUTES"];
    if show_profile {
        header.insert(0, "PROFILE");
    }
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let i = &r.instance;
        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let mut line = vec![
            r.scope.region.clone(),
            i.id.clone(),
            dash(i.name.clone()),
            i.state.to_string(),
            dash(i.private_ip.map(|a| a.to_string())),
            dash(i.public_ip.map(|a| a.to_string())),
            platform(i).to_string(),
            r.routes.column(),
        ];
        if show_profile {
            line.insert(0, r.scope.profile.clone().unwrap_or_else(|| "(default)".into()));
        }
        // Names and tags come from whoever can tag an instance: escaped for the terminal.
        cells.push(line.into_iter().map(|c| crate::text::printable(&c).into_owned()).collect());
    }
    let columns = cells[0].len();
    let mut widths: Vec<usize> =
        (0..columns).map(|c| cells.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect();
    if let Some(max) = width {
        let name = usize::from(show_profile) + 2;
        // NAME and ROUTES keep at least their header's width and a few characters.
        width::fit_columns(&mut widths, 2, max, &[name, columns - 1], "ROUTES".len());
    }
    let mut out = String::new();
    for row in cells {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let cell = &width::cut(cell, widths[c]);
            if c + 1 == columns {
                line += cell;
            } else {
                line += &format!("{cell:<width$}  ", width = widths[c]);
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// The JSON document (see the module docs), pretty-printed, with a final newline.
pub(crate) fn json(rows: &[Listed], outcomes: &[ScopeOutcome]) -> String {
    let doc = Document {
        schema: SCHEMA,
        scopes: outcomes
            .iter()
            .map(|o| ScopeJson {
                profile: o.scope.profile.as_deref(),
                region: &o.scope.region,
                listed: o.listed,
                error: o.error.as_deref(),
                warnings: &o.warnings,
            })
            .collect(),
        instances: rows
            .iter()
            .map(|r| {
                let i = &r.instance;
                InstanceJson {
                    profile: r.scope.profile.as_deref(),
                    region: &r.scope.region,
                    id: &i.id,
                    name: i.name.as_deref(),
                    state: i.state.as_str(),
                    private_ip: i.private_ip.map(|a| a.to_string()),
                    public_ip: i.public_ip.map(|a| a.to_string()),
                    platform: platform(i),
                    instance_type: i.instance_type.as_deref(),
                    availability_zone: i.availability_zone.as_deref(),
                    vpc_id: i.vpc_id.as_deref(),
                    ssm_ping_status: r.agent_ping.as_deref(),
                    tags: i.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
                    routes: r.routes,
                }
            })
            .collect(),
    };
    // Serializing plain structs of strings, numbers and maps with string keys cannot fail.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

fn platform(i: &crate::target::instance::Instance) -> &'static str {
    if i.is_windows() { "windows" } else { "linux" }
}

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    scopes: Vec<ScopeJson<'a>>,
    instances: Vec<InstanceJson<'a>>,
}

#[derive(Serialize)]
struct ScopeJson<'a> {
    profile: Option<&'a str>,
    region: &'a str,
    listed: usize,
    error: Option<&'a str>,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct InstanceJson<'a> {
    profile: Option<&'a str>,
    region: &'a str,
    id: &'a str,
    name: Option<&'a str>,
    state: &'static str,
    private_ip: Option<String>,
    public_ip: Option<String>,
    platform: &'static str,
    instance_type: Option<&'a str>,
    availability_zone: Option<&'a str>,
    vpc_id: Option<&'a str>,
    ssm_ping_status: Option<&'a str>,
    tags: BTreeMap<&'a str, &'a str>,
    routes: RouteSigns,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::instance::{Instance, InstanceState};

    fn row() -> Listed {
        let mut i = Instance::new("i-0a1b2c3d4e5f60718", InstanceState::Running);
        i.name = Some("web\x1b[2J-1".into());
        i.private_ip = Some("10.0.1.5".parse().unwrap());
        i.tags = vec![("Name".into(), "web\x1b[2J-1".into())];
        Listed {
            scope: Scope { profile: None, region: "eu-west-1".into() },
            instance: i,
            agent_ping: Some("Online".into()),
            routes: RouteSigns {
                push: Some(true),
                direct: Some(true),
                eice: Some(false),
                ssm: Some(true),
                serial: None,
            },
        }
    }

    #[test]
    fn table_is_aligned_and_terminal_safe() {
        let t = table(&[row()], false, None);
        assert_eq!(
            t,
            "REGION     ID                   NAME          STATE    PRIVATE   PUBLIC  PLATFORM  ROUTES\n\
             eu-west-1  i-0a1b2c3d4e5f60718  web\\x1b[2J-1  running  10.0.1.5  -       linux     push,direct,ssm,serial?\n"
        );
        assert!(table(&[row()], true, None).starts_with("PROFILE    REGION"));
    }

    #[test]
    fn table_fits_a_terminal_by_cutting_name_and_routes() {
        let wide = table(&[row()], false, None);
        assert_eq!(wide.lines().map(|l| l.chars().count()).max(), Some(106));
        let t = table(&[row()], false, Some(90));
        assert_eq!(
            t,
            "REGION     ID                   NAME        STATE    PRIVATE   PUBLIC  PLATFORM  ROUTES\n\
             eu-west-1  i-0a1b2c3d4e5f60718  web\\x1b[2…  running  10.0.1.5  -       linux     push,dir…\n"
        );
        assert!(t.lines().all(|l| l.chars().count() <= 90), "{t}");
        // Cut after escaping: a cut cell never holds a raw control character.
        assert!(!t.contains('\x1b'));
        assert_eq!(table(&[row()], false, Some(200)), wide, "a wide terminal cuts nothing");
    }

    #[test]
    fn json_has_the_schema_and_tri_state_routes() {
        let outcome = ScopeOutcome { scope: row().scope, listed: 1, error: None, warnings: vec![] };
        let v: serde_json::Value = serde_json::from_str(&json(&[row()], &[outcome])).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["scopes"][0]["listed"], 1);
        let i = &v["instances"][0];
        assert_eq!(
            i["routes"],
            serde_json::json!({"push": true, "direct": true, "eice": false, "ssm": true, "serial": null})
        );
        assert_eq!(i["name"], "web\u{1b}[2J-1", "JSON escapes control characters itself");
        assert_eq!(i["platform"], "linux");
        assert_eq!(i["public_ip"], serde_json::Value::Null);
    }
}
