//! DescribeInstances for the audit: recycled addresses, OR-ed filter values with pagination,
//! the filter limits, DNS names and `keyName`, and the request log that counts every call.

use super::{LEGACY, OLD_WEB, STOPPED, WEB, element, instances, world};
use crate::ApiCall;
use crate::test_world::ec2;

/// `Filter.1.Name=name` with `values`, then `extra`.
fn filter_form(name: &str, values: &[String], extra: &str) -> String {
    let mut form = format!("Action=DescribeInstances&Filter.1.Name={name}");
    for (n, v) in values.iter().enumerate() {
        form.push_str(&format!("&Filter.1.Value.{}={v}", n + 1));
    }
    form + extra
}

/// Every page of a DescribeInstances query, following `nextToken`.
fn all_pages(w: &crate::test_world::World, form: &str) -> (Vec<(String, String)>, usize) {
    let (mut found, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let page_form = match &token {
            Some(t) => format!("{form}&NextToken={t}"),
            None => form.to_string(),
        };
        let (status, xml) = ec2(&w.lab, &page_form);
        assert_eq!(status, 200, "{xml}");
        found.extend(instances(&xml));
        pages += 1;
        token = element(&xml, "nextToken").map(str::to_string);
        if token.is_none() {
            return (found, pages);
        }
    }
}

#[test]
fn recycled_addresses_answer_with_the_running_and_the_old_instance() {
    let w = world();
    let ask = |form: &str| {
        let (status, xml) = ec2(&w.lab, form);
        assert_eq!(status, 200, "{xml}");
        instances(&xml)
    };
    let pair = |id: &str, code: &str| (id.to_string(), code.to_string());
    let both = vec![pair(WEB, "16"), pair(OLD_WEB, "48")];
    let one = |name: &str, value: &str| ask(&filter_form(name, &[value.to_string()], ""));
    assert_eq!(one("private-ip-address", "127.0.7.10"), both);
    assert_eq!(one("ip-address", "127.0.8.10"), both);
    assert_eq!(one("private-dns-name", "ip-127-0-7-10.eu-west-1.compute.internal"), both);
    assert_eq!(one("dns-name", "ec2-127-0-8-10.eu-west-1.compute.amazonaws.com"), both);
    assert_eq!(one("private-ip-address", "127.0.7.11"), vec![pair(LEGACY, "16"), pair(STOPPED, "80")]);
    let running = ask(&filter_form(
        "private-ip-address",
        &["127.0.7.10".into()],
        "&Filter.2.Name=instance-state-name&Filter.2.Value.1=running",
    ));
    assert_eq!(running, vec![pair(WEB, "16")], "filters are ANDed");
    let (_, xml) = ec2(&w.lab, &format!("Action=DescribeInstances&InstanceId.1={OLD_WEB}"));
    assert!(xml.contains("<instanceState><code>48</code><name>terminated</name></instanceState>"), "{xml}");
}

#[test]
fn many_filter_values_are_ored_and_paginate() {
    let w = world();
    // The nine addresses of the inventory among 200 values, most of which match nothing.
    let mut values: Vec<String> = (10..=17).map(|n| format!("127.0.7.{n}")).collect();
    values.push("127.0.8.10".into());
    values.extend((0..191).map(|n| format!("127.0.{}.{}", 100 + n / 200, n % 200 + 1)));
    assert_eq!(values.len(), 200);
    let (all, _) = all_pages(&w, &filter_form("private-ip-address", &values, ""));
    assert_eq!(all.len(), 9, "every instance has one of these private addresses: {all:?}");
    let (paged, pages) = all_pages(&w, &filter_form("private-ip-address", &values, "&MaxResults=5"));
    assert_eq!((paged.clone(), pages), (all.clone(), 2));
    let ids: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();
    let (by_id, pages) = all_pages(&w, &filter_form("instance-id", &ids, "&MaxResults=5"));
    assert_eq!((by_id, pages), (all.clone(), 2));
    let public = ["ec2-127-0-8-10.eu-west-1.compute.amazonaws.com".to_string(), "ec2-1-2-3-4.nowhere".into()];
    let (by_dns, _) = all_pages(&w, &filter_form("dns-name", &public, ""));
    assert_eq!(by_dns.len(), 2);
    let (wild, _) = all_pages(&w, &filter_form("private-ip-address", &["127.0.7.1?".into(), "x".into()], ""));
    assert_eq!(wild.len(), 9);

    values.push("127.0.7.99".into());
    let (status, xml) = ec2(&w.lab, &filter_form("private-ip-address", &values, ""));
    assert_eq!(status, 400);
    assert!(
        xml.contains("<Code>FilterLimitExceeded</Code><Message>The maximum number of filter values specified on a single call is 200</Message>"),
        "{xml}"
    );
    let (status, xml) = ec2(&w.lab, &filter_form("tag:Name", &["x".repeat(256)], ""));
    assert!(status == 400 && xml.contains("The maximum length for a filter value is 255 characters"), "{xml}");
    let (status, xml) = ec2(&w.lab, &filter_form("no-such-filter", &["x".into()], ""));
    assert!(status == 400 && xml.contains("<Code>InvalidParameterValue</Code>"), "{xml}");
}

#[test]
fn items_carry_dns_names_and_the_key_name() {
    let w = world();
    let (_, xml) = ec2(&w.lab, &format!("Action=DescribeInstances&InstanceId.1={WEB}&InstanceId.2={LEGACY}"));
    let items: Vec<&str> = xml.split("<instancesSet><item>").skip(1).collect();
    assert_eq!(items.len(), 2, "{xml}");
    assert!(items[0].contains("<privateDnsName>ip-127-0-7-10.eu-west-1.compute.internal</privateDnsName>"));
    assert!(items[0].contains("<dnsName>ec2-127-0-8-10.eu-west-1.compute.amazonaws.com</dnsName>"));
    assert!(items[0].contains("<keyName>lab-admin</keyName>"), "{}", items[0]);
    assert!(items[1].contains("<privateDnsName>ip-127-0-7-11.eu-west-1.compute.internal</privateDnsName>"));
    assert!(items[1].contains("<dnsName></dnsName>") && !items[1].contains("<keyName>"), "{}", items[1]);
    let (_, xml) = ec2(&w.lab, &filter_form("key-name", &["lab-*".into()], ""));
    assert_eq!(instances(&xml).len(), 1, "{xml}");
}

#[test]
fn every_call_is_in_the_request_log() {
    let w = world();
    let before = w.lab.state().calls().len();
    for _ in 0..3 {
        ec2(&w.lab, &filter_form("private-ip-address", &["127.0.7.10".into()], ""));
    }
    ec2(&w.lab, &format!("Action=GetConsoleOutput&InstanceId={WEB}"));
    ec2(&w.lab, "Action=DescribeKeyPairs");
    ec2(&w.lab, &filter_form("private-ip-address", &vec!["x".to_string(); 201], ""));
    let calls = w.lab.state().calls()[before..].to_vec();
    let call = |operation: &str, status| ApiCall {
        service: "ec2".into(),
        operation: operation.into(),
        status,
        access_key: crate::ACCESS_KEY_ID.into(),
    };
    assert_eq!(
        calls,
        vec![
            call("DescribeInstances", 200),
            call("DescribeInstances", 200),
            call("DescribeInstances", 200),
            call("GetConsoleOutput", 200),
            call("DescribeKeyPairs", 200),
            call("DescribeInstances", 400),
        ]
    );
}
