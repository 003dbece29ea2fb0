//! The join code: unlocking with the code, or with the pass a device got before.

use mesh::wire::MAX_JOIN_CODE_CHARS;
use mesh::{ErrorCode, SenderId, ServerFrame};

use super::Session;

impl Session {
    pub(super) async fn unlock(&mut self, code: String, device: SenderId) {
        if code.chars().count() > MAX_JOIN_CODE_CHARS {
            let detail = format!("a join code has at most {MAX_JOIN_CODE_CHARS} characters");
            return self.refuse(ErrorCode::WrongCode, detail, None).await;
        }
        if let Err(retry) = self.state.access.limits.unlock(device, self.address) {
            return self.rate_limited("join code attempts", retry, None).await;
        }
        match self
            .state
            .access
            .unlock(&self.state.store, code, device)
            .await
        {
            Ok(Some(token)) => {
                self.unlocked = true;
                tracing::info!(connection = self.id, "a device unlocked with the join code");
                self.send(ServerFrame::Access { token }).await;
            }
            Ok(None) => {
                tracing::info!(connection = self.id, address = %self.address, "wrong join code");
                self.refuse(
                    ErrorCode::WrongCode,
                    "that is not the join code".into(),
                    None,
                )
                .await;
            }
            Err(error) => self.internal_error(error, None).await,
        }
    }

    pub(super) async fn authenticate(&mut self, token: [u8; 32]) {
        match self
            .state
            .access
            .authenticate(&self.state.store, token)
            .await
        {
            Ok(true) => {
                self.unlocked = true;
                self.send(ServerFrame::Access { token }).await;
            }
            Ok(false) => {
                let detail =
                    "this device's pass is no longer valid; enter the join code".to_string();
                self.refuse(ErrorCode::WrongCode, detail, None).await;
            }
            Err(error) => self.internal_error(error, None).await,
        }
    }
}
