//! A generated inventory of 10 000 instances, started without listeners: the API answers for
//! all of them and consoles print stable stand-in keys.

use std::time::Instant;

use super::{element, instances};
use crate::console::{BEGIN_KEYS, ConsoleKeys};
use crate::inventory::Inventory;
use crate::test_world::ec2;

#[test]
fn ten_thousand_instances_without_listeners() {
    let inventory = Inventory::generated(10_000, 6);
    let started = Instant::now();
    let w = crate::test_world::start("generated", inventory.clone());
    // Reported, not asserted (tests never assert wall time): `cargo test -- --nocapture`.
    println!("Lab::start with 10 000 instances (serve_ssh = false): {:?}", started.elapsed());
    assert!(w.lab.instance_ids().is_empty(), "no sshd for any instance");
    assert!(!w.lab.state().serves_ssh(&inventory.instances[0].id));

    // One recycled address answers with its running and its terminated instance.
    let old = inventory.instances.iter().find(|i| i.state == "terminated").expect("some are terminated");
    let ip = old.private_ip.unwrap();
    let (status, xml) =
        ec2(&w.lab, &format!("Action=DescribeInstances&Filter.1.Name=private-ip-address&Filter.1.Value.1={ip}"));
    assert_eq!(status, 200, "{xml}");
    let found = instances(&xml);
    assert!(found.len() >= 2 && found.iter().any(|(id, code)| *id == old.id && code == "48"), "{found:?}");
    assert!(found.iter().any(|(_, code)| code == "16"), "{found:?}");

    // 200 addresses in one call, 5 pages of 50.
    let values: String = (inventory.instances.iter().filter(|i| i.state == "running").take(200))
        .enumerate()
        .map(|(n, i)| format!("&Filter.1.Value.{}={}", n + 1, i.private_ip.unwrap()))
        .collect();
    let (mut seen, mut token, mut pages) = (0, String::new(), 0);
    loop {
        let (status, xml) = ec2(
            &w.lab,
            &format!("Action=DescribeInstances&Filter.1.Name=private-ip-address{values}&MaxResults=50{token}"),
        );
        assert_eq!(status, 200, "{xml}");
        seen += instances(&xml).len();
        pages += 1;
        match element(&xml, "nextToken") {
            Some(t) => token = format!("&NextToken={t}"),
            None => break,
        }
    }
    assert!(seen >= 200 && pages >= 4, "{seen} instances in {pages} pages");

    // A cloud-init console prints the stand-in key, the same on every call.
    let inst = inventory.instances.iter().find(|i| i.console_keys() == ConsoleKeys::CloudInit && i.state == "running");
    let inst = inst.expect("most are cloud-init");
    let (_, xml) = ec2(&w.lab, &format!("Action=GetConsoleOutput&InstanceId={}", inst.id));
    let text = String::from_utf8(crate::base64::decode(element(&xml, "output").unwrap()).unwrap()).unwrap();
    let keys = w.lab.state().host_keys(&inst.id);
    assert_eq!(keys.len(), 1);
    assert!(text.contains(&format!("{BEGIN_KEYS}\r\n{}\r\n", keys[0])), "{text}");
    let (_, again) = ec2(&w.lab, &format!("Action=GetConsoleOutput&InstanceId={}", inst.id));
    assert_eq!(element(&again, "output"), element(&xml, "output"));
}
