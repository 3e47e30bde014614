//! For the lab's own tests: a lab of its own per test, in a temp dir removed afterwards, a
//! client runtime, and raw HTTP calls to the API endpoint.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

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

/// How long a raw API call may take.
const CALL_DEADLINE: Duration = Duration::from_secs(20);

/// A raw HTTP POST to the lab's API endpoint; returns the status and the body.
pub(crate) fn post(lab: &Lab, headers: &str, body: &str) -> (u16, String) {
    let addr = lab.endpoint_url().trim_start_matches("http://").to_string();
    let mut tcp = TcpStream::connect(&addr).expect("connecting to the lab API");
    tcp.set_read_timeout(Some(CALL_DEADLINE)).unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\n{headers}Authorization: AWS4-HMAC-SHA256 Credential=lab\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    (status, response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string())
}

/// An EC2 query call (`form` is the url-encoded body without `Version`); returns the status and
/// the XML.
pub(crate) fn ec2(lab: &Lab, form: &str) -> (u16, String) {
    post(lab, "Content-Type: application/x-www-form-urlencoded\r\n", &format!("{form}&Version=2016-11-15"))
}
