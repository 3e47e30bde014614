//! The consoles `known-hosts audit` reads: remembered ones from the cache
//! ([`crate::known_hosts::console_cache`]), the rest fetched a few at a time; when EC2 throttles
//! `GetConsoleOutput` even after the SDK's own backed-off retries, the audit stops asking, says
//! how many consoles it did not read, and keeps what it read, so running it again goes on where
//! it stopped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;

use crate::aws::{Aws, AwsError, ErrorKind};
use crate::cache::private_file::read_hint_up_to;
use crate::known_hosts::console::{self, ConsoleKeys};
use crate::known_hosts::console_cache::{ConsoleCache, Remembered};
use crate::output::progress::Progress;
use crate::target::instance::Instance;

/// The cache file's size at most: [`ConsoleCache`]'s entries are about 1 KiB each (the full host
/// keys), 20,000 of them.
const MAX_CACHE_FILE: u64 = 32 << 20;

/// Console outputs fetched at once.
const CONCURRENCY: usize = 8;

/// One console's fetch: `None` when it was not asked (EC2 was throttling by then).
type Fetch<'a> = (&'a Instance, Option<Result<Option<String>, AwsError>>);

/// What reading the consoles gave.
#[derive(Debug, Default)]
pub(crate) struct Consoles {
    /// Instance id → its first host-key block (`None`: the console shows none, or was not read).
    pub blocks: BTreeMap<String, Option<ConsoleKeys>>,
    /// `GetConsoleOutput` calls made.
    pub fetched: usize,
    /// Consoles answered from the cache.
    pub remembered: usize,
    /// Consoles not read because EC2 throttled the calls.
    pub skipped: usize,
}

/// Reads the consoles of `live` (cache first). An error other than throttling ends the audit: it
/// would hit every instance alike (a denied action, no network).
pub(crate) async fn read(aws: &Aws, live: &[&Instance]) -> anyhow::Result<Consoles> {
    let file = dirs::cache_dir().map(|d| d.join("ec2-broker").join("consoles.json"));
    let text = file.as_deref().map(|f| read_hint_up_to(f, MAX_CACHE_FILE)).unwrap_or_default();
    let mut cache = ConsoleCache::parse(&text);
    let mut out = Consoles::default();
    let mut wanted = Vec::new();
    for i in live {
        match cache.get(&aws.region, &i.id, i.launch_time.as_deref()) {
            Some(Remembered::Block { keys, truncated }) => {
                warn_if_truncated(&i.id, truncated);
                out.blocks.insert(i.id.clone(), Some(keys));
                out.remembered += 1;
            }
            Some(Remembered::NoBlock) => {
                out.blocks.insert(i.id.clone(), None);
                out.remembered += 1;
            }
            None => wanted.push(*i),
        }
    }

    let throttled = AtomicBool::new(false);
    let progress = (!wanted.is_empty()).then(|| Progress::start("reading consoles", wanted.len()));
    let fetched: Vec<Fetch> = futures_util::stream::iter(wanted)
        .map(|i| {
            let throttled = &throttled;
            async move {
                if throttled.load(Ordering::Relaxed) {
                    return (i, None);
                }
                let text = aws.console_output(&i.id).await;
                if matches!(&text, Err(e) if e.kind() == ErrorKind::Throttled) {
                    throttled.store(true, Ordering::Relaxed);
                }
                (i, Some(text))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .inspect(|_| progress.iter().for_each(Progress::step))
        .collect()
        .await;
    // The bar is erased before any warning below, so the two do not share a line.
    drop(progress);

    let now = crate::cache::unix_now();
    let mut changed = false;
    let mut first_error = None;
    for (i, result) in fetched {
        match result {
            Some(Ok(text)) => {
                out.fetched += 1;
                let truncated = text.as_deref().is_some_and(console::truncated);
                warn_if_truncated(&i.id, truncated);
                let block = text.as_deref().and_then(console::find);
                changed |= cache.put(&aws.region, &i.id, i.launch_time.as_deref(), block.as_ref(), truncated, now);
                out.blocks.insert(i.id.clone(), block);
            }
            Some(Err(e)) if e.kind() == ErrorKind::Throttled => {
                out.fetched += 1;
                out.skipped += 1;
                out.blocks.insert(i.id.clone(), None);
            }
            Some(Err(e)) => {
                out.fetched += 1;
                first_error.get_or_insert((i.id.clone(), e));
            }
            None => {
                out.skipped += 1;
                out.blocks.insert(i.id.clone(), None);
            }
        }
    }
    // What was read is kept even when the audit ends in an error: the next run need not ask again.
    if changed {
        super::proxy::save(file.as_deref(), &cache.to_json());
    }
    if let Some((id, e)) = first_error {
        return Err(anyhow::Error::new(e).context(format!("reading the console output of {id}")));
    }
    if out.skipped > 0 {
        tracing::warn!(
            "EC2 is throttling GetConsoleOutput: {} of {} consoles were not read, so those instances' host keys are \
             neither verified nor found mismatching. The {} read are remembered: run the audit again in a few minutes \
             to read the rest",
            out.skipped,
            live.len(),
            live.len() - out.skipped
        );
    }
    tracing::info!(fetched = out.fetched, remembered = out.remembered, skipped = out.skipped, "consoles read");
    Ok(out)
}

fn warn_if_truncated(id: &str, truncated: bool) {
    if truncated {
        tracing::warn!(
            instance = %id,
            "the console output fills the {} KiB GetConsoleOutput returns: its first boot may be cut off, \
             so a host-key block found in it may have been printed later",
            console::OUTPUT_LIMIT / 1024
        );
    }
}
