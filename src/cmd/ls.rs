//! `ec2-broker ls [FILTER…]`: every instance of the chosen accounts and Regions, with the routes
//! the APIs say look usable. Regions are listed concurrently; the lookups of what was listed go
//! into the lookup cache, so the next `ssh` to one of them makes no DescribeInstances call.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::aws::Aws;
use crate::cache::lookup::LookupCache;
use crate::cli::{LsArgs, ScopeArgs};
use crate::inventory::filter::Filters;
use crate::inventory::report::{self, ScopeOutcome};
use crate::inventory::{self, Listed, RegionFacts, Scope};
use crate::output;
use crate::output::progress::Progress;

/// Runs `ls`; exit code 0 when every scope was listed, 1 otherwise.
pub(crate) async fn run(args: LsArgs) -> anyhow::Result<u8> {
    let filters = Filters::parse(&args.filters)?;
    let listing = survey(&args.scope, true, &filters).await?;
    warm_lookup_cache(&listing.scopes, &filters);
    let show_profile =
        listing.scopes.iter().map(|(s, _)| &s.profile).collect::<std::collections::HashSet<_>>().len() > 1;
    let text = if args.json {
        report::json(&listing.rows, &listing.outcomes)
    } else {
        report::table(&listing.rows, show_profile, output::width::stdout_width())
    };
    output::print(&text).context("writing the listing")?;
    Ok(listing.exit_code())
}

/// What a survey of several scopes found.
pub(crate) struct Survey {
    /// Each scope that answered, with its facts.
    pub(crate) scopes: Vec<(Scope, RegionFacts)>,
    /// The instances the filters select, sorted.
    pub(crate) rows: Vec<Listed>,
    /// How each scope went.
    pub(crate) outcomes: Vec<ScopeOutcome>,
}

impl Survey {
    /// 0 when every scope was listed, else 1.
    pub(crate) fn exit_code(&self) -> u8 {
        u8::from(self.outcomes.iter().any(|o| o.error.is_some()))
    }
}

/// Lists every scope of `scope` concurrently (with the route facts when `routes`); a scope that
/// fails is reported on stderr and in the outcomes, and the others are still listed.
pub(crate) async fn survey(scope: &ScopeArgs, routes: bool, filters: &Filters) -> anyhow::Result<Survey> {
    let clients = scopes(scope).await?;
    let keep = |i: &crate::target::instance::Instance| filters.matches(i);
    // A bar only when there is more than one scope to wait for.
    let progress = (clients.len() > 1).then(|| Progress::start("listing Regions", clients.len()));
    let answers = futures_util::future::join_all(clients.iter().map(|(_, aws)| async {
        let answer = aws.region_facts(routes, keep).await;
        if let Some(p) = &progress {
            p.step();
        }
        answer
    }))
    .await;
    drop(progress);
    let mut survey = Survey { scopes: Vec::new(), rows: Vec::new(), outcomes: Vec::new() };
    for ((scope, _), answer) in clients.into_iter().zip(answers) {
        let label = scope_label(&scope);
        match answer {
            Ok(facts) => {
                for note in &facts.notes {
                    warn(&format!("{label}: {note} (the routes it tells about are shown as unknown)"));
                }
                let rows = inventory::listed(&scope, &facts, keep);
                survey.outcomes.push(ScopeOutcome {
                    scope: scope.clone(),
                    listed: rows.len(),
                    error: None,
                    warnings: facts.notes.clone(),
                });
                survey.rows.extend(rows);
                survey.scopes.push((scope, facts));
            }
            Err(e) => {
                let err = anyhow::Error::new(e);
                warn(&format!("{label}: could not list instances: {err:#}"));
                if let Some(hint) = crate::error::hint(&err) {
                    warn(&format!("  hint: {hint}"));
                }
                survey.outcomes.push(ScopeOutcome {
                    scope,
                    listed: 0,
                    error: Some(format!("{err:#}")),
                    warnings: vec![],
                });
            }
        }
    }
    inventory::sort(&mut survey.rows);
    Ok(survey)
}

/// The clients of every (profile, Region) pair: `--regions`, every enabled Region
/// (`--all-regions`), or the profile's own Region.
async fn scopes(args: &ScopeArgs) -> anyhow::Result<Vec<(Scope, Aws)>> {
    let profiles: Vec<Option<String>> =
        if args.profiles.is_empty() { vec![None] } else { args.profiles.iter().cloned().map(Some).collect() };
    let loads = profiles.iter().map(|profile| async move {
        let label = profile.as_deref().unwrap_or("(default)");
        let aws = Aws::load(profile.as_deref(), args.regions.first().map(String::as_str))
            .await
            .with_context(|| format!("loading AWS profile {label}"))?;
        let regions = if args.all_regions {
            aws.enabled_regions().await.with_context(|| format!("listing the Regions of profile {label}"))?
        } else if args.regions.is_empty() {
            vec![aws.region.clone()]
        } else {
            args.regions.clone()
        };
        let pairs: Vec<(Scope, Aws)> =
            regions.iter().map(|r| (Scope { profile: profile.clone(), region: r.clone() }, aws.in_region(r))).collect();
        anyhow::Ok(pairs)
    });
    let mut out = Vec::new();
    for pairs in futures_util::future::join_all(loads).await {
        out.extend(pairs?);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// Puts the lookups of the listed running instances into the lookup cache (best effort: a cache
/// is only a hint).
pub(crate) fn warm_lookup_cache(scopes: &[(Scope, RegionFacts)], filters: &Filters) {
    let Some(file) = lookup_cache_file() else { return };
    let mut cache = LookupCache::parse(&super::proxy::read_cache(Some(&file)));
    let now = crate::cache::unix_now();
    let mut added = 0usize;
    for (scope, facts) in scopes {
        // Names resolve among all of the Region's instances, as proxy resolves them.
        for (key, instance) in inventory::cache_entries(scope, &facts.instances) {
            if filters.matches(&instance) {
                cache.put(&key, instance, now);
                added += 1;
            }
        }
    }
    if added > 0 {
        super::proxy::save(Some(&file), &cache.to_json());
        tracing::debug!(entries = added, file = %file.display(), "lookup cache warmed");
    }
}

/// The lookup cache `proxy` reads: `~/.cache/ec2-broker/instances.json`.
pub(crate) fn lookup_cache_file() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("ec2-broker").join("instances.json"))
}

fn scope_label(scope: &Scope) -> String {
    match &scope.profile {
        Some(p) => format!("{} (profile {p})", scope.region),
        None => scope.region.clone(),
    }
}

/// A line on stderr that does not stop the command.
pub(crate) fn warn(text: &str) {
    let _ = writeln!(std::io::stderr(), "ec2-broker: warning: {}", crate::text::printable(text));
}
