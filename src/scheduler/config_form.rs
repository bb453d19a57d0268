//! [`DispatcherConfig`]'s stored form: its settings and its retry policy
//! as data, so that a cluster keeps one configuration for every node and
//! audit (a PostgreSQL cluster keeps it in its database). A configuration
//! read back is validated as the builder validates one.

use serde::de::Error as _;
use serde::ser::Error as _;

use super::DispatcherConfig;
use super::config::{RetrySetting, Settings};
use crate::resilience::RetrySpec;

#[derive(serde::Serialize, serde::Deserialize)]
struct Form {
    settings: Settings,
    retry: RetrySpec,
}

/// Writes the settings and the retry policy; a configuration with a host
/// [`RetryPolicy`](crate::resilience::RetryPolicy) (not a built-in one, so
/// not data) does not serialize.
///
/// ```
/// use std::time::Duration;
/// use taskweave::resilience::Fixed;
/// use taskweave::scheduler::{DispatcherConfig, TenantQuota};
/// use taskweave::TenantId;
///
/// let config = DispatcherConfig::builder()
///     .retry_policy(Fixed::new(Duration::from_millis(100), 3)?)
///     .tenant_quota(TenantId::new(1), TenantQuota::new().live_tasks(500))
///     .build()?;
/// let stored = serde_json::to_string(&config)?;
/// let read: DispatcherConfig = serde_json::from_str(&stored)?;
/// assert_eq!(serde_json::to_string(&read)?, stored);
/// // A stored form no builder would accept does not read back.
/// let zero = stored.replace("\"live_tasks\":500", "\"live_tasks\":0");
/// assert!(serde_json::from_str::<DispatcherConfig>(&zero).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl serde::Serialize for DispatcherConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(retry) = self.retry.spec else {
            return Err(S::Error::custom(
                "a configuration with a host retry policy does not serialize: use a built-in \
                 one (RetrySpec) to store it",
            ));
        };
        let form = Form {
            settings: self.settings.clone(),
            retry,
        };
        serde::Serialize::serialize(&form, serializer)
    }
}

/// Reads a stored configuration, refusing one the builder would refuse
/// (naming the setting).
impl<'de> serde::Deserialize<'de> for DispatcherConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Form { settings, retry } = Form::deserialize(deserializer)?;
        settings.validate().map_err(D::Error::custom)?;
        // A configuration holds quotas, not a limiter's history: a stored
        // one that carries some would run a dispatcher whose own
        // snapshots do not restore.
        let fresh = |limiter: &crate::resilience::KeyedRateLimiter<String>| {
            limiter.is_empty() && limiter.latest_seen() == crate::Instant::ZERO
        };
        if settings.kind_rate_limit.as_ref().is_some_and(|l| !fresh(l)) {
            return Err(D::Error::custom(
                "invalid kind rate limit: a stored configuration holds its quotas only, not the \
                 state of a limiter that already ran",
            ));
        }
        Ok(DispatcherConfig {
            settings,
            retry: RetrySetting::new(retry),
        })
    }
}
