//! The agent's side of the KMS handshake (`ssm-data-channel.md` §11; datachannel.go's
//! `finalizeKMSEncryption`, `sendEncryptionChallenge`, `handleEncryptionChallengeResponse`).

use std::collections::BTreeMap;

use super::{Agent, HANDSHAKE_TIMEOUT, Handshake};
use crate::ssm::crypto::AgentCipher;
use crate::ssm::frame::payload_type;
use crate::ssm::handshake;
use crate::state::lock;

impl Agent {
    /// Decrypts the client's data key through the KMS double with the session's context and
    /// keeps the ciphers (`UpdateEncryptionKey`, blockcipher.go).
    pub(super) fn finalize_kms(&mut self, result: Option<handshake::KmsResult>) -> Result<(), String> {
        // A client that answered KMSEncryption with status 1 but no result: Go unmarshals
        // `null` into an empty response, whose empty blob KMS refuses.
        let result =
            result.unwrap_or(handshake::KmsResult { ciphertext_key: Some(Vec::new()), challenge_acknowledged: false });
        if self.config.require_kms_challenge && !result.challenge_acknowledged {
            return Err("client does not support required encryption context random challenge".into());
        }
        let info = self.sender.session.info();
        let mut context = BTreeMap::from([
            ("aws:ssm:SessionId".to_string(), info.id.clone()),
            ("aws:ssm:TargetId".to_string(), info.target.clone()),
        ]);
        if result.challenge_acknowledged {
            context.insert("aws:ssm:RandomChallenge".into(), self.random_challenge.clone());
        }
        let key_id = self.config.kms_key_id.clone().unwrap_or_default();
        let decrypted = crate::ssm::kms_agent::decrypt(
            &self.state,
            &info.target,
            &result.ciphertext_key.unwrap_or_default(),
            &context,
            &key_id,
        )
        .map_err(|e| {
            format!("Fetching data key failed: Unable to retrieve data key, Error when decrypting data key {e}")
        })?;
        let cipher = AgentCipher::new(&decrypted, rand::random())
            .ok_or_else(|| "Fetching data key failed: crypto/aes: invalid key size".to_string())?;
        *lock(&self.sender.cipher) = Some(cipher);
        self.sender.session.set_data_key(decrypted);
        Ok(())
    }

    /// EncChallengeRequest: 64 random bytes encrypted with the agent→client key (§11.8).
    pub(super) fn send_challenge(&mut self) {
        let bytes: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
        let sealed = lock(&self.sender.cipher).as_mut().map(|c| c.encrypt(&bytes)).unwrap_or_default();
        let payload = format!("{{\"Challenge\":\"{}\"}}", crate::base64::encode(&sealed));
        self.challenge = Some(bytes);
        self.handshake = Handshake::ChallengeSent;
        self.deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        self.sender.send_stream(payload_type::ENC_CHALLENGE_REQUEST, payload.into_bytes());
    }

    /// EncChallengeResponse: must decrypt (client→agent key) to the same 64 bytes.
    pub(super) async fn handle_challenge_response(&mut self, payload: &[u8]) {
        let decrypted = {
            let cipher = lock(&self.sender.cipher);
            let sealed = handshake::challenge(payload).unwrap_or_default();
            cipher.as_ref().map(|c| c.decrypt(&sealed))
        };
        match decrypted {
            Some(Ok(bytes)) if Some(&bytes) == self.challenge.as_ref() => self.complete_handshake().await,
            Some(Ok(_)) => self.fail("Encountered error while initiating handshake. Encryption challenge does not match!".into()),
            _ => self.fail(
                "Encountered error while initiating handshake. Error decrypting encrypted text, cipher: message authentication failed"
                    .into(),
            ),
        }
    }
}
