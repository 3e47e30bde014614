//! SSM DescribeInstanceInformation: the documented filter keys of `Filters` and of the legacy
//! `InstanceInformationFilterList` (item 1), and the source members (item 10).

use aws_sdk_ssm::types::{InstanceInformationFilter, InstanceInformationFilterKey, InstanceInformationStringFilter};

use super::block_on;
use super::{DB, WEB, refusal, sdk};
use crate::harness::World;

fn string_filter(key: &str, value: &str) -> InstanceInformationStringFilter {
    InstanceInformationStringFilter::builder().key(key).values(value).build().unwrap()
}

// See: issue 18
#[test]
fn issue_18_1_instance_information_filters_follow_the_api() {
    let world = World::new();
    block_on(async {
        let ssm = aws_sdk_ssm::Client::new(&sdk(&world.lab).await);
        let ids = |out: aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationOutput| {
            let mut ids: Vec<String> =
                out.instance_information_list().iter().filter_map(|i| i.instance_id.clone()).collect();
            ids.sort();
            ids
        };
        let linux = ids(ssm
            .describe_instance_information()
            .filters(string_filter("PlatformTypes", "Linux"))
            .send()
            .await
            .unwrap());
        assert!(linux.contains(&WEB.to_string()) && linux.contains(&DB.to_string()), "{linux:?}");
        let web =
            ids(ssm.describe_instance_information().filters(string_filter("tag:Role", "web")).send().await.unwrap());
        assert_eq!(web, [WEB]);
        let tagged =
            ids(ssm.describe_instance_information().filters(string_filter("tag-key", "Team")).send().await.unwrap());
        assert_eq!(tagged, [WEB]);
        for key in ["IamRole", "AssociationStatus", "ActivationIds"] {
            let none = ids(ssm.describe_instance_information().filters(string_filter(key, "x")).send().await.unwrap());
            assert!(none.is_empty(), "{key}: {none:?}");
        }
        let legacy = InstanceInformationFilter::builder()
            .key(InstanceInformationFilterKey::PlatformTypes)
            .value_set("Linux")
            .build()
            .unwrap();
        let out = ssm.describe_instance_information().instance_information_filter_list(legacy.clone()).send().await;
        assert_eq!(ids(out.unwrap()), linux);

        let made_up =
            refusal(ssm.describe_instance_information().filters(string_filter("PlatformType", "Linux")).send().await);
        assert_eq!((made_up.status, made_up.code.as_str()), (400, "InvalidFilterKey"), "{made_up:?}");
        let legacy_tag = InstanceInformationFilter::builder()
            .key(InstanceInformationFilterKey::from("tag-key"))
            .value_set("Role")
            .build()
            .unwrap();
        let refused =
            refusal(ssm.describe_instance_information().instance_information_filter_list(legacy_tag).send().await);
        assert_eq!(refused.code, "InvalidFilterKey", "the legacy list has no tag filters");
        let both = ssm
            .describe_instance_information()
            .instance_information_filter_list(legacy)
            .filters(string_filter("PlatformTypes", "Linux"))
            .send()
            .await;
        assert_eq!(refusal(both).status, 400);
    })
}

// See: issue 18
#[test]
fn issue_18_10_instance_information_names_its_source() {
    let world = World::new();
    block_on(async {
        let ssm = aws_sdk_ssm::Client::new(&sdk(&world.lab).await);
        let out = ssm.describe_instance_information().filters(string_filter("InstanceIds", WEB)).send().await.unwrap();
        let info = &out.instance_information_list()[0];
        assert_eq!(
            (info.source_id(), info.source_type()),
            (Some(WEB), Some(&aws_sdk_ssm::types::SourceType::AwsEc2Instance))
        );
        assert!(info.last_ping_date_time().is_some() && info.computer_name().is_some());
    })
}
