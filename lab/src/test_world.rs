//! For the lab's own tests: a lab of its own per test, in a temp dir removed afterwards, and a
//! client runtime.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Inventory, Lab};

/// One test's lab and runtime.
pub(crate) struct World {
    pub(crate) lab: Lab,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a lab for `inventory` under a fresh temp dir named after `prefix`.
pub(crate) fn start(prefix: &str, inventory: Inventory) -> World {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("ec2-lab-{prefix}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    crate::demo::make_traversable(&dir).unwrap();
    let lab = Lab::start(inventory, &dir).expect("starting the lab (needs root and openssh-server)");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    World { lab, rt, dir }
}
