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

/// A raw HTTP POST to the lab's API endpoint, signed by the lab user; returns the status and
/// the body.
pub(crate) fn post(lab: &Lab, headers: &str, body: &str) -> (u16, String) {
    post_signed(lab, "lab", headers, body)
}

/// A raw HTTP POST signed as [`exchange`] says.
pub(crate) fn post_signed(lab: &Lab, credential: &str, headers: &str, body: &str) -> (u16, String) {
    let (status, _, body) = exchange(lab, credential, headers, body);
    (status, body)
}

/// As [`post_signed`]; returns the status, the response head and the body. The request is
/// really SigV4-signed (`crate::sigv4_header`) at the current time: `credential` is `lab` (the
/// lab user) or a scope `<key>/<date>/<region>/<service>/aws4_request` whose key, Region and
/// service are used (the date is today's); the secret and session token are the key's own
/// (the lab user's, or those AssumeRole issued), or a made-up secret for a key the lab never
/// issued.
pub(crate) fn exchange(lab: &Lab, credential: &str, headers: &str, body: &str) -> (u16, String, String) {
    let addr = lab.endpoint_url().trim_start_matches("http://").to_string();
    let mut list: Vec<(String, String)> = (headers.split("\r\n"))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let scope: Vec<&str> = credential.split('/').collect();
    let key = match scope[0] {
        "lab" => crate::ACCESS_KEY_ID,
        key => key,
    };
    let json_service = || {
        let target = list.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target")).map(|(_, v)| v.as_str());
        match target {
            Some(t) if t.starts_with("AmazonSSM.") => "ssm",
            Some(t) if t.starts_with("TrentService.") => "kms",
            Some(_) => "ec2-instance-connect",
            None => "ec2",
        }
    };
    let service = scope.get(3).copied().unwrap_or_else(json_service).to_string();
    let region = scope.get(2).copied().unwrap_or("eu-west-1").to_string();
    let issued = lab.state().assumed_roles().into_iter().find(|r| r.access_key_id == key);
    let secret = match &issued {
        Some(r) => r.secret_access_key.clone(),
        None if key == crate::ACCESS_KEY_ID => crate::SECRET_ACCESS_KEY.to_string(),
        None => "not-a-secret-the-lab-issued".to_string(),
    };
    if let Some(r) = &issued {
        list.push(("X-Amz-Security-Token".into(), r.session_token.clone()));
    }
    list.push(("Host".into(), addr.clone()));
    list.push(("X-Amz-Date".into(), crate::eice::sigv4::amz_date_from_unix(unix_now())));
    let request =
        crate::sigv4_header::Request { method: "POST", path: "/", query: "", headers: &list, body: body.as_bytes() };
    let authorization = crate::sigv4_header::authorization(&request, key, &secret, &region, &service);
    send(&addr, &list, &authorization, body)
}

/// Sends a request with `headers` and `Authorization: authorization`; returns the status, the
/// response head and the body.
pub(crate) fn send(addr: &str, headers: &[(String, String)], authorization: &str, body: &str) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(addr).expect("connecting to the lab API");
    tcp.set_read_timeout(Some(CALL_DEADLINE)).unwrap();
    let mut request = String::from("POST / HTTP/1.1\r\n");
    for (k, v) in headers {
        request += &format!("{k}: {v}\r\n");
    }
    request +=
        &format!("Authorization: {authorization}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    tcp.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response.as_str(), ""));
    (status, head.to_string(), body.to_string())
}

/// The real clock in Unix seconds (requests are signed by it, never by the lab clock).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// An EC2 query call (`form` is the url-encoded body without `Version`); returns the status and
/// the XML.
pub(crate) fn ec2(lab: &Lab, form: &str) -> (u16, String) {
    post(lab, "Content-Type: application/x-www-form-urlencoded\r\n", &format!("{form}&Version=2016-11-15"))
}

/// The SigV4 credential of `access_key` for `service` in the lab's Region.
pub(crate) fn scope(access_key: &str, service: &str) -> String {
    format!("{access_key}/20261123/eu-west-1/{service}/aws4_request")
}

/// An EC2 query call signed with `access_key`.
pub(crate) fn ec2_as(lab: &Lab, access_key: &str, form: &str) -> (u16, String) {
    let headers = "Content-Type: application/x-www-form-urlencoded\r\n";
    post_signed(lab, &scope(access_key, "ec2"), headers, &format!("{form}&Version=2016-11-15"))
}

/// An STS call (`form` without `Version`) signed with `access_key`; returns the status and the XML.
pub(crate) fn sts(lab: &Lab, access_key: &str, form: &str) -> (u16, String) {
    let headers = "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n";
    post_signed(lab, &scope(access_key, "sts"), headers, &format!("{form}&Version=2011-06-15"))
}

/// An awsJson call (`target` like `AmazonSSM.StartSession`) signed with `access_key`.
pub(crate) fn json_as(lab: &Lab, access_key: &str, target: &str, body: &str) -> (u16, String) {
    let service = match target {
        t if t.starts_with("AmazonSSM.") => "ssm",
        t if t.starts_with("TrentService.") => "kms",
        _ => "ec2-instance-connect",
    };
    let headers = format!("Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\n");
    post_signed(lab, &scope(access_key, service), &headers, body)
}
