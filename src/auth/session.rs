//! Session (stub).
use crate::config;
use std::time::Duration;
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("timeout")]
    Timeout,
    #[error("unavailable: {0}")]
    Unavailable(String),
}
pub struct SessionRecord {
    pub user_id: String,
    pub roles: Option<Vec<String>>,
    pub created_at: Option<u64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub device_id: Option<String>,
    pub refresh_count: u64,
}
pub struct NewSession {
    pub session_id: String,
    pub user_id: String,
    pub roles: Option<Vec<String>>,
    pub ip: String,
    pub user_agent: String,
    pub device_id: String,
}
pub enum SessionStore {
    Memory,
}
impl SessionStore {
    pub async fn connect(cfg: &config::Session) -> Result<SessionStore, StoreError> {
        let _ = cfg;
        Ok(SessionStore::Memory)
    }
    pub async fn get(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
        let _ = sid;
        Ok(None)
    }
    pub async fn create(&self, new: &NewSession, ttl: Duration) -> Result<(), StoreError> {
        let _ = (new, ttl);
        Ok(())
    }
    pub async fn delete(&self, sid: &str) -> Result<bool, StoreError> {
        let _ = sid;
        Ok(false)
    }
    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
impl NewSession {
    pub fn admin(sid: &str, uid: &str, roles: Option<Vec<String>>) -> Self {
        NewSession {
            session_id: sid.into(),
            user_id: uid.into(),
            roles,
            ip: String::new(),
            user_agent: String::new(),
            device_id: String::new(),
        }
    }
}
