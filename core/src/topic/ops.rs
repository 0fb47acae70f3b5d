//! Topic operations on a [`Pail`] client: create, read, alter and delete topics through the
//! topic's descriptor chain ([`super::chain`]).

use bytes::Bytes;
use std::convert::Infallible;
use std::sync::Arc;

use super::chain::{TopicChain, TopicEdit, TopicRefusal, apply};
use super::{TopicConfig, TopicMeta, TopicName};
use crate::chain::commit::{self, CommitCtx, Outcome, Step};
use crate::chain::{Head, tip};
use crate::client::Pail;
use crate::error::{Error, Result};
use crate::record::{self, Record};

impl Pail {
    fn topic_chain<'a>(&'a self, name: &'a TopicName) -> TopicChain<'a> {
        TopicChain {
            store: self.store(),
            name,
            cache: self.topic_cache(),
        }
    }

    /// Creates a topic with a fresh id. Fails with `TopicExists` if a live topic has the name,
    /// even if a concurrent creator got there first; an unclear answer is settled by reading
    /// back, so a topic's own creator never hears `TopicExists`. A deleted topic's name can be
    /// used again: the new incarnation continues its partitions' offsets (offsets are never
    /// reused) under the new id.
    pub async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<TopicMeta>> {
        config.validate()?;
        let id = crate::entropy::attempt_id();
        match self
            .topic_commit(name, &TopicEdit::Create { config, id })
            .await
        {
            // A damaged descriptor still holds the name (describe and doctor explain it).
            Err(Error::Blocked { .. }) => Err(Error::TopicExists {
                topic: name.to_string(),
            }),
            other => other,
        }
    }

    /// Changes a topic's settings (`key=value` with Kafka's names, see
    /// [`super::ALTERABLE_SETTINGS`]) and, optionally, grows its partitions.
    pub async fn alter_topic(
        &self,
        name: &str,
        settings: &[(String, String)],
        partitions: Option<u32>,
    ) -> Result<Arc<TopicMeta>> {
        let current = self.topic_latest(name).await?;
        let mut config = current.config.with_settings(settings)?;
        if let Some(n) = partitions {
            config.partitions = n;
        }
        config.validate()?;
        self.topic_commit(name, &TopicEdit::Alter { config }).await
    }

    /// The descriptor of a live topic, from the client's cache when it has one.
    pub async fn topic(&self, name: &str) -> Result<Arc<TopicMeta>> {
        let name = TopicName::new(name)?;
        let head = tip::known(&self.topic_chain(&name)).await?;
        live(&name, head)
    }

    /// The descriptor of a live topic, confirmed with the store (1 GET when it is cached).
    pub async fn topic_latest(&self, name: &str) -> Result<Arc<TopicMeta>> {
        let name = TopicName::new(name)?;
        let head = tip::latest(&self.topic_chain(&name)).await?;
        live(&name, head)
    }

    /// Marks the topic deleted in its descriptor chain (the partitions are dropped by
    /// `Pail::delete_topic`, which calls this first).
    pub(crate) async fn mark_topic_deleted(&self, name: &str) -> Result<Arc<TopicMeta>> {
        self.topic_commit(name, &TopicEdit::Delete).await
    }

    async fn topic_commit(&self, name: &str, edit: &TopicEdit) -> Result<Arc<TopicMeta>> {
        let name = TopicName::new(name)?;
        self.store().ensure_conditional_writes().await?;
        let digest = record::digest(&[Record::from_value(format!("{edit:?}"))]);
        let chain = self.topic_chain(&name);
        let ctx = CommitCtx {
            entropy: self.entropy(),
            hedge: None,
            deadline: None,
            digest: &digest,
        };
        let outcome = commit::commit(&chain, ctx, |tip, id| {
            let now = self.clock().now_ms();
            let next = apply(&tip.state, edit, id, &digest, now).map_err(|r| refusal(&name, r))?;
            let bytes = next.encode()?;
            Ok(Step::<_, Infallible>::Create(next, Bytes::from(bytes)))
        })
        .await?;
        match outcome {
            Outcome::New(v) => Ok(v.state),
            Outcome::Done(never) => match never {},
        }
    }
}

/// The head's descriptor if the topic is live; a damaged first descriptor is corruption.
fn live(name: &TopicName, head: Head<TopicMeta>) -> Result<Arc<TopicMeta>> {
    let meta = head.tip.state;
    if meta.version == 0 {
        return Err(match head.blocked {
            Some(b) => Error::Corrupt {
                key: b.key,
                reason: b.reason,
            },
            None => Error::UnknownTopic {
                topic: name.to_string(),
            },
        });
    }
    if meta.deleted {
        return Err(Error::UnknownTopic {
            topic: name.to_string(),
        });
    }
    Ok(meta)
}

fn refusal(name: &TopicName, r: TopicRefusal) -> Error {
    match r {
        TopicRefusal::Exists => Error::TopicExists {
            topic: name.to_string(),
        },
        TopicRefusal::Unknown => Error::UnknownTopic {
            topic: name.to_string(),
        },
        TopicRefusal::Invalid(reason) => Error::InvalidArgument(reason),
    }
}
