//! The configured credentials, fetched once and kept until shortly before they expire, shared
//! by every Region's clients of one [`Aws`](super::Aws) (as the SDK's identity cache is shared
//! by the clients of one configuration): a profile that assumes a role or signs in with IAM
//! Identity Center is asked once, not per call or per Region.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

/// Credentials that expire sooner than this are fetched again (the SDK's lazy cache's margin).
const MARGIN: Duration = Duration::from_secs(10);

/// The provider and what it last gave.
#[derive(Debug, Clone)]
pub(crate) struct CredentialCache(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    provider: Option<SharedCredentialsProvider>,
    last: tokio::sync::Mutex<Option<Credentials>>,
}

impl CredentialCache {
    /// A cache in front of `provider` (`None`: no provider was configured).
    pub(crate) fn new(provider: Option<SharedCredentialsProvider>) -> CredentialCache {
        CredentialCache(Arc::new(Inner { provider, last: tokio::sync::Mutex::new(None) }))
    }

    /// Whether a provider was configured.
    pub(crate) fn has_provider(&self) -> bool {
        self.0.provider.is_some()
    }

    /// Credentials valid for at least [`MARGIN`], from the cache or the provider.
    pub(crate) async fn get(&self) -> Result<Credentials, CredentialsError> {
        let Some(provider) = &self.0.provider else {
            return Err(CredentialsError::not_loaded("no credentials provider configured"));
        };
        let mut last = self.0.last.lock().await;
        if let Some(c) = last.as_ref().filter(|c| fresh(c, SystemTime::now())) {
            return Ok(c.clone());
        }
        let got = provider.provide_credentials().await?;
        *last = Some(got.clone());
        Ok(got)
    }
}

/// The SDK's clients ask through the cache too, so every client of the process shares one
/// fetch.
impl ProvideCredentials for CredentialCache {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.get())
    }
}

/// Whether `c` is still good at `now` with the margin to spare.
fn fresh(c: &Credentials, now: SystemTime) -> bool {
    c.expiry().is_none_or(|at| at > now + MARGIN)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug)]
    struct Counting(Arc<AtomicU32>, Option<SystemTime>);

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.0.fetch_add(1, Ordering::SeqCst);
            future::ProvideCredentials::ready(Ok(Credentials::new("AKID", "SECRET", None, self.1, "test")))
        }
    }

    #[tokio::test]
    async fn asked_once_until_the_credentials_near_their_expiry() {
        let calls = Arc::new(AtomicU32::new(0));
        let lasting = CredentialCache::new(Some(SharedCredentialsProvider::new(Counting(calls.clone(), None))));
        let copy = lasting.clone();
        lasting.get().await.unwrap();
        copy.get().await.unwrap();
        lasting.provide_credentials().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch for every clone, and through the provider interface");

        let soon = SystemTime::now() + Duration::from_secs(5);
        let calls = Arc::new(AtomicU32::new(0));
        let expiring = CredentialCache::new(Some(SharedCredentialsProvider::new(Counting(calls.clone(), Some(soon)))));
        expiring.get().await.unwrap();
        expiring.get().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "credentials within the margin are fetched again");
        assert!(CredentialCache::new(None).get().await.is_err());
    }
}
